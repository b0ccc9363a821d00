"""Answers channel requests. Transport-agnostic: it is given a ``post(text)`` function,
a ``post_frames(text, pixel_buffers)`` function for replies carrying RGB frames, and a
millisecond ``clock()``, so the same code serves the PyScript worker, the ``?worker=0``
main-thread baseline and CPython tests."""

import sys
import traceback

from protocol import messages as m
from worker.env_host import EnvHost
from worker.policies import build_seats, cpu_runner, prepare_seats

ASYNC_TYPES = (m.INIT, m.INSTALL_PACKAGES)
MAIN_SLOT = "main"
# Where an experiment's files are laid out in the worker's file system (one folder per
# experiment, as in its experiments/ folder on the server).
FILES_ROOT = "/home/pyodide/experiments"


class Dispatcher:
    """One worker serves a whole visit: each game scene's env is loaded into a slot of its
    own (SET_GLOBALS / RUN_INIT_CODE name it), so the next scene's env can be prepared while
    the current one plays; RESET with a slot makes it the one STEP and BATCH drive."""

    def __init__(self, post, clock, installer=None, runtime="cpython", fetcher=None, post_frames=None,
                 onnx_runner=None, files_root=None):
        self.post = post
        self._files_root = files_root  # where the experiment's files go (CPython: a folder of its own)
        # CPython callers that draw nothing may leave it out: the pixels are dropped
        self.post_frames = post_frames or (lambda text, frames: post(text))
        self.clock = clock
        self.installer = installer
        self.fetcher = fetcher  # async (url) -> bytes, for env files; None in CPython tests
        self.runtime = runtime
        # (model path, INIT options) -> ONNX runner: onnxruntime-web in the browser
        self.onnx_runner = onnx_runner or (lambda path, options: cpu_runner(path))
        self.hosts = {MAIN_SLOT: EnvHost()}
        self.active = MAIN_SLOT
        self.options = {}
        self.installed = set()  # package URLs installed during this visit
        self.fetched = {}  # path in the worker's file system -> URL it was last written from

    @property
    def files_root(self):
        return self._files_root or FILES_ROOT

    @property
    def host(self):
        return self.hosts[self.active]

    def _slot(self, msg, create=False):
        name = str(msg.get("slot") or MAIN_SLOT)
        if name not in self.hosts:
            if not create:
                raise m.ProtocolError("no env slot " + repr(name) + " (send RUN_INIT_CODE for it first)")
            self.hosts[name] = EnvHost(ring_size=int(self.options.get("ring_size", 9)))
        return self.hosts[name]

    def send(self, msg):
        self.post(m.encode(msg))

    def announce_ready(self):
        self.send(m.make(m.READY_ID, m.READY, {
            "runtime": self.runtime, "python": sys.version.split()[0], "t_worker": self.clock(),
        }))

    def progress(self, stage, message, fraction):
        self.send(m.progress(stage, message, fraction))

    def handle_text(self, text):
        """Handle one raw message. Returns a coroutine for requests that must await
        (INIT, INSTALL_PACKAGES, RUN_INIT_CODE with files) — the caller schedules it —
        else None."""
        started = self.clock()
        try:
            msg = m.decode(text)
        except m.ProtocolError as exc:
            self.send(m.error(m.READY_ID, "ProtocolError", str(exc)))
            return None
        if msg["type"] not in m.REQUESTS:
            self.send(m.error(msg["id"], "ProtocolError", "not a request: " + msg["type"]))
            return None
        # RUN_INIT_CODE awaits only when it has files to fetch (an experiment's folder);
        # RESET when an AI seat's first decision must be awaited (ONNX in the browser)
        if msg["type"] in ASYNC_TYPES or (msg["type"] == m.RUN_INIT_CODE and msg.get("root") is not None) \
                or (msg["type"] == m.RESET and self._resets_async(msg)):
            return self._run_async(msg, started)
        self.host.take_frames()  # nothing left over from a request that failed
        try:
            result = self._handle_sync(msg)
        except Exception as exc:
            self._send_error(msg, exc)
            return None
        self._reply(msg, result, started)
        if msg["type"] in (m.STEP, m.BATCH) and self.host.has_async_partners():
            return self.host.decide()  # the next frame's decisions, awaited between frames
        return None

    def _resets_async(self, msg):
        name = str(msg.get("slot") or self.active)
        host = self.hosts.get(name)
        if host is None:
            return False
        if host.fill:
            return host.has_async_partners()
        seats = [host.partners.get(s) for s in msg.get("hosting") or ()]
        return any(seat is not None and seat.is_async for seat in seats)

    async def _run_async(self, msg, started):
        try:
            if msg["type"] == m.INIT:
                result = self._init(msg)
            elif msg["type"] == m.RUN_INIT_CODE:
                result = await self._load_env(msg)
            elif msg["type"] == m.RESET:
                result = self._handle_sync(msg)
                await self.host.first_decisions()
                if self.host.hosting:
                    result["partners"] = self.host.room_report()
            else:
                result = await self._install(msg)
        except Exception as exc:
            self._send_error(msg, exc)
            return
        self._reply(msg, result, started)

    def _reply(self, msg, result, started):
        result["t_sent"] = msg.get("t_sent")
        result["t_worker_start"] = started
        result["t_worker_end"] = self.clock()
        result["request"] = msg["type"]
        reply = m.make(msg["id"], m.RESULT_FOR[msg["type"]], result)
        frames = self.host.take_frames()
        if frames:
            self.post_frames(m.encode(reply), frames)
        else:
            self.send(reply)

    def _send_error(self, msg, exc):
        self.send(m.error(
            msg["id"], type(exc).__name__, str(exc),
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            stage=msg["type"],
        ))

    def _init(self, msg):
        self.options = dict(msg.get("options") or {})
        for host in self.hosts.values():
            host.ring_size = int(self.options.get("ring_size", host.ring_size))
        return {"runtime": self.runtime, "python": sys.version.split()[0]}

    async def _install(self, msg):
        # a later scene lists the packages of the whole visit: install only the new ones
        packages = [p for p in msg["packages"] if not p.get("url") or p["url"] not in self.installed]
        if not packages:
            return {"installed": [], "already": len(msg["packages"])}
        if self.installer is None:
            raise RuntimeError("this runtime cannot install packages")
        installed = await self.installer(packages, self.options, self.progress)
        self.installed.update(p["url"] for p in packages)
        return {"installed": installed}

    async def _load_env(self, msg):
        """Lay the experiment's files out in the worker's file system (fetched once per
        visit, again only when their content changed), then run the env's code from there:
        its sibling modules import and its data files open as they do in CPython."""
        base = self.files_root + "/" + msg["root"]
        files = msg.get("files") or []
        for index, entry in enumerate(files):
            await self._write_file(base + "/" + entry["path"], entry["url"])
            self.progress("loading_env", "Loading environment files…", 0.9 + 0.05 * (index + 1) / len(files))
        filename = base + "/" + msg.get("filename", "env.py")
        self._write_text(filename, msg["code"])
        env_dir = filename.rsplit("/", 1)[0]
        search_path = [env_dir] if env_dir == base else [env_dir, base]
        host = self._slot(msg, create=True)
        result = self._run_env(msg, filename, search_path)
        if msg.get("partners"):  # AI seats, their policy files beside the env's
            started = self.clock()
            seats = build_seats(msg["partners"], base, search_path,
                                runner_for=lambda path: self.onnx_runner(path, self.options))
            if any(seat.is_async for seat in seats.values()):
                self.progress("loading_env", "Loading the AI partner…", 0.97)
                await prepare_seats(seats)  # ONNX sessions created and warmed up while the page loads
            host.set_partners(seats, fill=not msg.get("room"))  # in a room, AI actions are inputs
            result["partners_ms"] = round(self.clock() - started, 3)
            warm = [seat.policy.warm_ms for seat in seats.values()
                    if getattr(seat.policy, "warm_ms", None) is not None]
            if warm:  # the model's awaited run, back to back, once warm
                result["model_run_ms"] = round(max(warm), 4)
        return result

    def _run_env(self, msg, filename, search_path=()):
        self.progress("loading_env", "Loading environment…", 0.95)
        name = str(msg.get("slot") or MAIN_SLOT)
        host = self._slot(msg, create=True)
        if msg.get("partners") and msg.get("root") is None:
            raise m.ProtocolError("AI partners need the experiment's files (RUN_INIT_CODE root)")
        host.load(msg["code"], filename, search_path=search_path)
        if self.host.env is None:  # the visit's first env is the one played until a RESET says otherwise
            self._activate(name)
        return {"loaded": True, "slot": name}

    async def _write_file(self, path, url):
        if self.fetched.get(path) == url:
            return
        if self.fetcher is None:
            raise RuntimeError("this runtime cannot fetch env files")
        data = await self.fetcher(url)
        _make_dirs(path)
        with open(path, "wb") as fh:
            fh.write(data)
        self.fetched[path] = url

    def _write_text(self, path, text):
        _make_dirs(path)
        with open(path, "w") as fh:
            fh.write(text)
        self.fetched.pop(path, None)

    def _handle_sync(self, msg):
        kind = msg["type"]
        if kind == m.SET_GLOBALS:
            self._slot(msg, create=True).set_globals(msg["globals"])
            return {"names": sorted(msg["globals"])}
        if kind == m.RUN_INIT_CODE:
            return self._run_env(msg, msg.get("filename", "env.py"))
        if kind == m.RESET:
            if msg.get("slot") is not None:
                self._slot(msg)  # it must have been loaded
                self._activate(str(msg["slot"]))
            out = self.host.reset(msg.get("seed"), render=msg.get("render", True), hosting=msg.get("hosting"))
            if self.host.hosting:  # a room's AI seats hosted here: their first decisions
                out["partners"] = self.host.room_report()
            return out
        if kind == m.STEP:
            return self.host.step(msg["actions"], render=msg.get("render", True),
                                  include_obs=bool(msg.get("include_obs")))
        if kind == m.BATCH:
            out = {"results": self.host.run_batch(msg["ops"])}
            if self.host.hosting:  # a room's AI seats hosted here: their latest decisions
                out["partners"] = self.host.room_report()
            return out
        raise m.ProtocolError("unhandled request " + kind)

    def _activate(self, name):
        """Make slot `name` the one played; the scene before it is over, so its env goes."""
        if name != self.active:
            self.hosts.pop(self.active, None)
            self.active = name


def _make_dirs(path):
    import os

    folder = path.rsplit("/", 1)[0]
    os.makedirs(folder, exist_ok=True)
