"""Every path derives from one data root: ``--data-dir``, else ``$DUCKMARKET_DATA``, else ./data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "DUCKMARKET_DATA"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / "data").resolve()


@dataclass(frozen=True)
class DataPaths:
    root: Path

    def __post_init__(self) -> None:
        # DataPaths("data") works as DataPaths(Path("data")) does
        if not isinstance(self.root, Path):
            object.__setattr__(self, "root", Path(os.fspath(self.root)).expanduser())

    @classmethod
    def from_arg(cls, data_dir: str | os.PathLike[str] | None = None) -> DataPaths:
        return cls(resolve_data_dir(data_dir))

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def manifest(self) -> Path:
        return self.lake / "manifest.sqlite"

    @property
    def lock(self) -> Path:
        return self.lake / ".writer.lock"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def marts(self) -> Path:
        """Parquet marts for Python readers, ``<name>.parquet``: a link to the set the last
        build published (see warehouse/marts.py)."""
        return self.root / "marts"

    @property
    def export(self) -> Path:
        return self.root / "export"

    def ensure(self) -> DataPaths:
        for p in (self.lake, self.export):
            p.mkdir(parents=True, exist_ok=True)
        if not self.marts.is_symlink():  # the published set's link, once there is one
            self.marts.mkdir(parents=True, exist_ok=True)
        return self
