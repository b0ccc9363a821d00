"""Data: the store (SQLite or Postgres) and the export."""
