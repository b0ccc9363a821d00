"""Researcher-only pages: dashboard, export download, password hashes."""
