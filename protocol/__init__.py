"""Message schema shared by the browser (MicroPython + Pyodide) and the server (CPython)."""
