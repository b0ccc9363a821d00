"""The typed channel between the page's main thread and the env worker.

Shared verbatim by MicroPython (main thread), Pyodide (worker) and CPython (tests,
server replay), so it sticks to the subset all three accept: no typing, no dataclasses,
no dict-order assumptions (MicroPython dicts are unordered). A message is a plain
dict ``{"id": int, "type": str, ...}`` sent as one JSON string: one encode/decode per
hop, no JS proxies to convert or leak, and the bytes are identical in every runtime.
"""

import json

# main -> worker
INIT = "INIT"
INSTALL_PACKAGES = "INSTALL_PACKAGES"
SET_GLOBALS = "SET_GLOBALS"
RUN_INIT_CODE = "RUN_INIT_CODE"
STEP = "STEP"
RESET = "RESET"
BATCH = "BATCH"
# worker -> main
READY = "READY"
INIT_COMPLETE = "INIT_COMPLETE"
STEP_RESULT = "STEP_RESULT"
RESET_RESULT = "RESET_RESULT"
BATCH_RESULT = "BATCH_RESULT"
PROGRESS = "PROGRESS"
ERROR = "ERROR"

REQUESTS = (INIT, INSTALL_PACKAGES, SET_GLOBALS, RUN_INIT_CODE, STEP, RESET, BATCH)
RESPONSES = (READY, INIT_COMPLETE, STEP_RESULT, RESET_RESULT, BATCH_RESULT, PROGRESS, ERROR)

# The reply that completes each request. Requests without a dedicated result type
# (INSTALL_PACKAGES, SET_GLOBALS, RUN_INIT_CODE) complete with INIT_COMPLETE.
RESULT_FOR = {
    INIT: INIT_COMPLETE,
    INSTALL_PACKAGES: INIT_COMPLETE,
    SET_GLOBALS: INIT_COMPLETE,
    RUN_INIT_CODE: INIT_COMPLETE,
    STEP: STEP_RESULT,
    RESET: RESET_RESULT,
    BATCH: BATCH_RESULT,
}

REQUIRED = {
    INIT: (),
    INSTALL_PACKAGES: ("packages",),
    SET_GLOBALS: ("globals",),
    RUN_INIT_CODE: ("code",),
    STEP: ("actions",),
    RESET: (),
    BATCH: ("ops",),
    READY: (),
    INIT_COMPLETE: (),
    STEP_RESULT: (),
    RESET_RESULT: (),
    BATCH_RESULT: ("results",),
    PROGRESS: ("stage", "message", "fraction"),
    ERROR: ("error_type", "message"),
}

# Milliseconds a request may stay unanswered before the page declares the worker dead.
# Package installs download and unpack wheels, so they get far longer.
DEFAULT_TIMEOUTS_MS = {
    INIT: 60000,
    INSTALL_PACKAGES: 180000,
    SET_GLOBALS: 10000,
    RUN_INIT_CODE: 30000,
    STEP: 3000,
    RESET: 10000,
    BATCH: 3000,
}

# BATCH operations, executed in order without yielding.
OP_RESTORE = "restore"
OP_STEP = "step"
OP_SNAPSHOT = "snapshot"
OP_HASH = "hash"
OP_RENDER = "render"
OP_HOST = "host"  # {"seats": [...]}: the room's AI seats this browser decides for from now on
BATCH_OPS = (OP_RESTORE, OP_STEP, OP_SNAPSHOT, OP_HASH, OP_RENDER, OP_HOST)

READY_ID = 0  # READY is unsolicited; it carries id 0, which no request uses.

# An RGB frame in a reply: the drawable {"type": "image", "w", "h", "buffer": i} stands in
# the render list, and its RGBA pixels (w*h*4 bytes) travel beside the JSON text as
# binary: the worker posts the JS array [json_text, pixels_0, pixels_1, ...] with the
# pixel buffers transferred, so a frame is neither copied nor turned into a JSON list.
IMAGE = "image"


def image_items(msg):
    """The image drawables of a reply: in its render, or in its BATCH results' renders."""
    renders = [msg.get("render")]
    for result in msg.get("results") or ():
        renders.append(result.get("render"))
    found = []
    for render in renders:
        for item in render or ():
            if isinstance(item, dict) and item.get("type") == IMAGE:
                found.append(item)
    return found


class ProtocolError(ValueError):
    pass


def validate(msg):
    if not isinstance(msg, dict):
        raise ProtocolError("message must be an object, got " + type(msg).__name__)
    mid = msg.get("id")
    if not isinstance(mid, int) or isinstance(mid, bool) or mid < 0:
        raise ProtocolError("message id must be a non-negative integer, got " + repr(mid))
    mtype = msg.get("type")
    if mtype not in REQUIRED:
        raise ProtocolError("unknown message type " + repr(mtype))
    for field in REQUIRED[mtype]:
        if field not in msg:
            raise ProtocolError(mtype + " message is missing field " + repr(field))
    if mtype == BATCH:
        if not isinstance(msg["ops"], list):
            raise ProtocolError("BATCH ops must be a list, got " + type(msg["ops"]).__name__)
        for op in msg["ops"]:
            if not isinstance(op, dict) or op.get("op") not in BATCH_OPS:
                raise ProtocolError("bad BATCH op " + repr(op))
    return msg


def make(mid, mtype, fields=None):
    msg = {"id": mid, "type": mtype}
    if fields:
        for key in fields:
            msg[key] = fields[key]
    return validate(msg)


def encode(msg):
    return json.dumps(validate(msg))


def decode(text):
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ProtocolError("message is not JSON: " + str(exc)) from None
    return validate(msg)


def error(mid, error_type, message, traceback="", stage=""):
    return make(mid, ERROR, {
        "error_type": error_type, "message": message, "traceback": traceback, "stage": stage,
    })


def progress(stage, message, fraction):
    return make(READY_ID, PROGRESS, {"stage": stage, "message": message, "fraction": fraction})


class Pending:
    """Outstanding requests of one channel: ids, expected reply types and deadlines.

    Pure bookkeeping (no clocks, no I/O) so the same logic runs in the browser and
    under pytest; the caller passes the current time in milliseconds.
    """

    def __init__(self, timeouts=None):
        self.timeouts = dict(DEFAULT_TIMEOUTS_MS)
        if timeouts:
            for key in timeouts:
                self.timeouts[key] = timeouts[key]
        self._next = 1
        self._open = {}  # id -> (request type, deadline ms)

    def __len__(self):
        return len(self._open)

    def open(self, mtype, now_ms):
        mid = self._next
        self._next += 1
        self._open[mid] = (mtype, now_ms + self.timeouts[mtype])
        return mid

    def close(self, msg):
        """Match a worker reply to its request. Returns the request type, or None for
        messages that answer nothing (PROGRESS, READY, stale ids)."""
        mtype = msg["type"]
        if mtype in (PROGRESS, READY):
            return None
        entry = self._open.get(msg["id"])
        if entry is None:
            return None
        if mtype != ERROR and RESULT_FOR[entry[0]] != mtype:
            raise ProtocolError(
                "request " + str(msg["id"]) + " (" + entry[0] + ") answered with " + mtype)
        del self._open[msg["id"]]
        return entry[0]

    def expired(self, now_ms):
        """Ids whose deadline has passed, oldest first."""
        late = [mid for mid in self._open if self._open[mid][1] <= now_ms]
        late.sort()
        return late

    def describe(self, mid):
        entry = self._open.get(mid)
        return entry[0] if entry else None

    def drain(self):
        """Forget every outstanding request (the worker is gone); returns their ids."""
        ids = sorted(self._open)
        self._open = {}
        return ids
