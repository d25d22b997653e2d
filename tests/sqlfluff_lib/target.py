"""``target`` for sqlfluff's Jinja templater (.sqlfluff: library_path): the models are
linted as they render for the DuckDB target."""

type = "duckdb"
