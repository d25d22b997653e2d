"""duckmarket hot path: zero-copy memory-mapped exports of marts."""
