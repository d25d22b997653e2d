"""``python -m duckmarket``: the same as the ``duckmarket`` command."""

import sys

from .cli import main

sys.exit(main())
