"""Every message the server must not miss (episode start and end, step batches, scene
results with survey answers, client events) goes through the outbox.

A message gets the page load's stream id and the next sequence number, is written to
localStorage before it is first sent, and is removed only when the server acknowledged
it. Messages go one at a time, in order, so the server always sees an episode's start
before its steps. The server stores each (participant, stream, seq) once, so resending
after a reconnect or a reload is always safe; leftovers of an earlier page load go
first, because stream ids sort by creation time.

Pure Python (MicroPython and CPython): the page passes in localStorage, its socket call
and its sleep, so pytest runs this module as it is."""

import asyncio
import json

PREFIX = "coplay:out:"
OPEN_PREFIX = "coplay:open:"  # the step batch still being filled, rewritten every frame
RETRY_MS = 500


def _keys(storage, prefix):
    found = []
    for i in range(int(storage.length)):
        key = str(storage.key(i))
        if key.startswith(prefix):
            found.append(key)
    found.sort()
    return found


class SpillingStorage:
    """localStorage, plus memory for what no longer fits. A full quota (a long outage fills
    the 5 MB or so a site gets) must neither stop the game nor drop a record: what spilled
    is still delivered, and is lost only if the tab is closed before the server is back."""

    def __init__(self, storage, try_set=None):
        self.storage = storage
        # (storage, key, value) -> bool: how the page writes without a JS exception reaching
        # MicroPython (pages/jsbridge.try_set_item); without it, the write's own exception
        self.try_set = try_set
        self.memory = {}
        self.spilled = 0

    @property
    def length(self):
        return int(self.storage.length) + len(self.memory)

    def key(self, i):
        stored = int(self.storage.length)
        return str(self.storage.key(i)) if i < stored else list(self.memory)[i - stored]

    def getItem(self, key):  # noqa: N802 - the Web Storage API's names
        if key in self.memory:
            return self.memory[key]
        return self.storage.getItem(key)

    def setItem(self, key, value):  # noqa: N802
        if self.try_set is not None:
            stored = self.try_set(self.storage, key, value)
        else:
            try:
                self.storage.setItem(key, value)
                stored = True
            except Exception:
                stored = False
        if stored:
            self.memory.pop(key, None)
        else:  # QuotaExceededError (or storage disabled)
            self.memory[key] = value
            self.spilled += 1

    def removeItem(self, key):  # noqa: N802
        self.memory.pop(key, None)
        self.storage.removeItem(key)


class Outbox:
    def __init__(self, storage, call, sleep, participant, stream, on_change=None):
        self.storage = storage  # the Web Storage API: window.localStorage in the page
        self.call = call  # async (event, payload_json) -> ack dict
        self.sleep = sleep  # async (ms) -> None
        self.prefix = PREFIX + participant + ":"
        self.open_prefix = OPEN_PREFIX + participant + ":"
        self.stream = stream
        self.on_change = on_change
        self.seq = 0
        self.delivered = 0
        self.rejected = []
        self.steps_delivered = {}  # episode id -> step records the server acknowledged
        self.waiting = False  # True while the server is unreachable
        self._task = None

    # -- writing ------------------------------------------------------------------------
    def put(self, event, payload):
        """Queue `payload` for `event`; it is in localStorage when this returns."""
        self.seq += 1
        body = dict(payload)
        body["stream"] = self.stream
        body["seq"] = self.seq
        key = self.prefix + self.stream + ":" + ("%08d" % self.seq) + ":" + event
        self.storage.setItem(key, json.dumps(body))
        self.kick()
        return self.seq

    def keep_open(self, episode_id, records):
        """Persist the batch still being filled (so a closed tab loses no frame)."""
        key = self.open_prefix + episode_id
        if records:
            self.storage.setItem(key, json.dumps(records))
        else:
            self.storage.removeItem(key)

    def seal_leftovers(self, chunk):
        """Queue the half-filled batches an earlier page load left behind."""
        for key in _keys(self.storage, self.open_prefix):
            records = json.loads(str(self.storage.getItem(key)))
            episode_id = key[len(self.open_prefix):]
            for start in range(0, len(records), chunk):
                self.put("steps", {"episode_id": episode_id, "records": records[start:start + chunk]})
            self.storage.removeItem(key)

    # -- delivery -----------------------------------------------------------------------
    def pending(self):
        return len(_keys(self.storage, self.prefix))

    def queued_step_records(self):
        count = 0
        for key in _keys(self.storage, self.prefix):
            if key.endswith(":steps"):
                count += len(json.loads(str(self.storage.getItem(key)))["records"])
        return count

    def kick(self):
        if self._task is None:
            self._task = asyncio.create_task(self._pump())

    async def _pump(self):
        try:
            while True:
                keys = _keys(self.storage, self.prefix)
                if not keys:
                    return
                key = keys[0]
                event = key.rsplit(":", 1)[1]
                body = str(self.storage.getItem(key))
                ack = await self.call(event, body)
                if ack.get("ok"):
                    self._done(key, event, body)
                elif ack.get("unreachable") or ack.get("retry"):
                    self._set_waiting(True)
                    await self.sleep(RETRY_MS)
                else:
                    # refused for good (it can never become valid): keep the queue moving
                    self.rejected.append((event, str(ack.get("error"))))
                    self.storage.removeItem(key)
        finally:
            self._task = None
            self._set_waiting(False)

    def _done(self, key, event, body):
        self.storage.removeItem(key)
        self.delivered += 1
        if event == "steps":
            payload = json.loads(body)
            eid = payload["episode_id"]
            self.steps_delivered[eid] = self.steps_delivered.get(eid, 0) + len(payload["records"])
        self._set_waiting(False)

    def _set_waiting(self, waiting):
        # the page is told when the server goes away, and after every delivery (saved counts)
        changed = waiting != self.waiting
        self.waiting = waiting
        if self.on_change is not None and (changed or not waiting):
            self.on_change(self)

    async def flush(self, timeout_ms=None):
        """Wait until everything queued is acknowledged; False if `timeout_ms` passed
        first (what is left stays queued)."""
        waited = 0
        while self.pending():
            if timeout_ms is not None and waited >= timeout_ms:
                return False
            self.kick()
            await self.sleep(50)
            waited += 50
        return True


class Uploader:
    """One episode's step records: filled into batches of `batch_size`, each batch handed
    to the outbox (numbered, kept in localStorage, delivered in order until acknowledged).
    The batch being filled is rewritten to localStorage every frame, so a closed tab
    loses no frame either: the next page load queues it (Outbox.seal_leftovers)."""

    def __init__(self, outbox, episode_id, batch_size):
        self.outbox = outbox
        self.episode_id = episode_id
        self.batch_size = batch_size
        self.open = []

    def add(self, record):
        self.open.append(record)
        if len(self.open) >= self.batch_size:
            self.seal()
        else:
            self.outbox.keep_open(self.episode_id, self.open)

    def seal(self):
        # queued (persisted) first, forgotten second: a crash between them resends frames
        # the server already has, which it ignores
        if self.open:
            self.outbox.put("steps", {"episode_id": self.episode_id, "records": self.open})
            self.open = []
        self.outbox.keep_open(self.episode_id, [])

    async def finish(self, status, frames, total_reward, timeout_ms=10000):
        """Queue the last records and the episode's end, then wait (bounded) for the server
        to have everything; what it could not take yet stays queued (sent on reconnect or
        on the next load). True when all was delivered."""
        self.seal()
        self.outbox.put("episode_end", {"episode_id": self.episode_id, "status": status, "frames": frames,
                                        "total_reward": total_reward})
        return await self.outbox.flush(timeout_ms)
