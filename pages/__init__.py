"""Main-thread code of the experiment page (MicroPython under PyScript).
Modules that touch the browser import `js`/`pyscript`; the pure ones (controls,
outbox, netcode) are also unit-tested under CPython."""
