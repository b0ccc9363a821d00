"""Code that runs inside the Pyodide worker (and, for tests and replay, in CPython)."""
