"""Main-thread side of the worker clock (pages/clock_worker.py): `await clock.tick()`
returns on the next tick. Falls back to main-thread timers if the clock worker is not
there (single-player pages do not load it)."""

import js

from pages.jsbridge import js_get, log, sleep_ms, wait_on


class WorkerClock:
    def __init__(self, interval_ms):
        self.interval_ms = interval_ms
        self.worker = None
        self.ready = False
        self.waiters = []
        self.source = "timer"

    async def start(self, wait_ms=5000):
        script = js.document.querySelector("script[type=mpy][worker][name=clock]")
        waited = 0
        while script is not None and waited < wait_ms:
            worker = js_get(script, "xworker")
            if worker is not None:
                self.worker = worker
                worker.onmessage = self._on_message
                break
            await sleep_ms(20)
            waited += 20
        while self.worker is not None and not self.ready and waited < wait_ms:
            self.worker.postMessage(-1)  # ping until it answers (it may still be booting)
            await sleep_ms(50)
            waited += 50
        if self.ready:
            self.worker.postMessage(self.interval_ms)
            self.source = "worker"
        else:
            log("clock worker unavailable; using main-thread timers")
        return self.source

    def _on_message(self, event):
        data = event.data
        if not isinstance(data, int):
            return  # PyScript's own bookkeeping
        if data == 0:
            self.ready = True
            return
        waiters = self.waiters
        self.waiters = []
        for resolve in waiters:
            resolve(data)

    async def tick(self):
        if self.source != "worker":
            await sleep_ms(self.interval_ms)
            return
        await wait_on(self.waiters)

    def stop(self):
        if self.worker is not None and self.ready:
            self.worker.postMessage(0)
