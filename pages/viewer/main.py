"""Replay viewer, main thread (MicroPython): a recorded episode or room played again.

The experiment's env loads into the page's Pyodide worker exactly as on a game page (the
same worker, INIT, INSTALL_PACKAGES, SET_GLOBALS, RUN_INIT_CODE through pages/games.py's
GamePreparer; pages/renderer.py draws it), then plays from the record's seed and recorded
inputs (server/replay_viewer/). A first pass steps through the whole record in BATCHes,
snapshotting every keyframe (pages/viewer/seek.py) and hashing the final state; after it
every seek is one BATCH: restore the nearest keyframe, replay the rest.

<body> carries what tests and benchmarks follow: data-stage, data-frame (shown), data-frames
(the last frame), data-playing, data-speed, data-every (keyframe spacing), data-opened-at,
data-final-hash (after the first pass), data-state-hash (whenever the last frame is shown),
data-recorded-hash, data-hash-match, data-render (the shown frame's drawables as JSON, RGB
pixels left out), data-seeks / data-seek-ms / data-seek-worker-ms (the last seek asked for)."""

import js

js.performance.mark("coplay:main-start")

import asyncio  # noqa: E402
import json  # noqa: E402

from js import document, window  # noqa: E402

from pages.channel import ChannelClient, ChannelDead, WorkerError  # noqa: E402
from pages.jsbridge import js_get, log, now_ms, sleep_ms  # noqa: E402
from pages.ui import Ui  # noqa: E402
from pages.viewer.seek import Timeline, failed_op, keyframe_every  # noqa: E402
from protocol import messages as m  # noqa: E402

CHUNK = 300  # steps per BATCH of the first pass
MOST_STEPS = 2000  # steps per BATCH of a seek (the no-snapshot baseline's long ones are split)
DETAIL_CHUNK = 300  # recorded frames fetched per request
KEEP_CHUNKS = 6
SPEEDS = (0.25, 0.5, 1, 2, 4, 8)

ui = Ui()


def el(name):
    return document.getElementById(name)


async def fetch_json(url):
    response = await js.fetch(url)
    text = str(await response.text())
    if not response.ok:
        raise RuntimeError(url + ": HTTP " + str(response.status) + " " + text[:200])
    return json.loads(text)


def url_int(name):
    value = js.URLSearchParams.new(window.location.search).get(name)
    if value is None:
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


async def worker_transport():
    """The PyScript worker's handle, once PyScript has made it (as pages/main.py finds it)."""
    while True:
        script = document.querySelector("script[type=py][worker]")
        found = js_get(script, "xworker") if script is not None else None
        if found is not None:
            return found
        await sleep_ms(10)


def on_progress(msg):
    if msg["stage"] == "installing":
        ui.progress(msg["message"], 50 + 35 * msg["fraction"])
    else:
        ui.progress(msg["message"], 90)


def fatal(reason, detail=None):
    ui.error(reason if not detail else reason + "\n\n" + detail)


async def boot(cfg, data_task):
    """Pyodide in the worker, told to keep a snapshot of every keyframe of this record."""
    ui.progress("Loading Pyodide…", 5)
    channel = ChannelClient(await worker_transport(), cfg["timeouts_ms"], on_progress, fatal)
    await channel.wait_ready()
    ui.progress("Starting Python…", 40)
    data = await data_task
    every = url_int("every")
    timeline = Timeline(data["inputs"], keyframe_every(data["frames"]) if every is None else max(0, every))
    await channel.request(m.INIT, {"options": {"ring_size": timeline.ring_size()}})
    cfg["timeline"] = timeline
    ui.boot_stage("installing")
    ui.progress("Installing packages…", 50)
    return channel


def plain(items):
    """The drawables without the RGB pixels the channel attached (JS arrays)."""
    out = []
    for item in items or ():
        if isinstance(item, dict) and "pixels" in item:
            item = dict(item)
            item.pop("pixels")
        out.append(item)
    return out


def text_of(value):
    if isinstance(value, str):
        return value
    return json.dumps(value)


def lines_of(label, value, out):
    if isinstance(value, dict) and value:
        out.append(label + ":")
        for key in sorted(value):
            out.append("  " + str(key) + ": " + text_of(value[key]))
    else:
        out.append(label + ": " + text_of(value))


class Viewer:
    def __init__(self, cfg, data, channel, renderer):
        self.cfg = cfg
        self.data = data
        self.channel = channel
        self.renderer = renderer
        self.timeline = cfg["timeline"]
        self.fps = data["fps"]
        self.playing = False
        self.speed = 1.0
        self.want = None  # the frame the controls asked for, taken by the loop
        self.waiters = []
        self.shown = 0
        self.heading = 0  # the frame the worker is being moved to (the shown one once it is there)
        self.clock_t = 0.0
        self.clock_frame = 0
        self.seeks = 0
        self.last_step = None  # (frame, replayed step result) of the latest BATCH
        self.key_results = {}  # keyframe -> the replayed step that reached it
        self.details = {}  # chunk -> {frame: recorded rows}
        self.asked = set()
        self.env_error = None
        self.final_hash = None

    # -- the worker --------------------------------------------------------------------------
    async def batch(self, ops):
        """One BATCH; None if the env raised (the timeline then ends before that step)."""
        try:
            reply = await self.channel.request(m.BATCH, {"ops": ops})
        except WorkerError as exc:
            index = failed_op(str(exc))
            if index is None or index >= len(ops) or ops[index]["op"] != "step":
                raise
            frame = ops[index]["frame"] - 1
            self.timeline.failed(ops, index)
            self.timeline.stop_at(frame)
            self.env_error = {"frame": frame, "message": str(exc)}
            self.note("env-error", "The env raised in this browser stepping from frame " + str(frame)
                      + " to " + str(frame + 1) + ": " + str(exc))
            ui.attr("env-error-at", frame)
            ui.attr("frames", self.timeline.last)
            el("scrub").max = self.timeline.last
            return None
        self.timeline.applied(ops)
        steps = self.timeline.step_results(ops, reply["results"])
        if steps:
            self.last_step = steps[-1]
            for frame, result in steps:
                if self.timeline.is_key(frame):
                    self.key_results[frame] = result
        return reply

    async def first_pass(self):
        """Step through the whole record once: keyframes snapshotted, the final state hashed."""
        started = now_ms()
        await self.batch(self.timeline.start_ops())
        last = self.timeline.last
        while self.timeline.frame is not None and self.timeline.frame < last:
            at_end = last - self.timeline.frame <= CHUNK
            ops = self.timeline.plan(last, limit=CHUNK, render=False, hash_end=at_end)
            reply = await self.batch(ops)
            if reply is None:
                break
            if at_end:
                self.final_hash = reply["results"][-1]["hash"]
            el("loader-message").textContent = ("Preparing the replay… frame " + str(self.timeline.frame)
                                                + " of " + str(last))
            await sleep_ms(0)
        if last == 0:
            reply = await self.batch([{"op": "hash"}])
            self.final_hash = reply["results"][0]["hash"]
        ui.attr("index-ms", round(now_ms() - started, 1))
        if self.final_hash is not None:
            ui.attr("final-hash", self.final_hash)
            self.verdict(self.final_hash)

    async def go(self, target, measured=False):
        """Show frame ``target``: one BATCH (split only if very long), drawn, data beside it."""
        started = now_ms()
        worker_ms = 0.0
        reply = None
        failures = 0
        target = self.timeline.clamp(target)
        self.heading = target
        while failures < 2:
            start = self.timeline.base_for(target)[0]
            last_batch = target - start <= MOST_STEPS  # drawn (and hashed at the end) only then
            ops = self.timeline.plan(target, limit=MOST_STEPS, render=last_batch,
                                     hash_end=last_batch and target >= self.timeline.last)
            reply = await self.batch(ops)
            if reply is None:
                failures += 1
                target = self.timeline.clamp(target)
                continue
            worker_ms += reply["t_worker_end"] - reply["t_worker_start"]
            if self.timeline.frame == target:
                break
        if reply is None:
            self.heading = self.shown
            return
        results = reply["results"]
        for result in reversed(results):
            if "render" in result:
                self.renderer.draw(result["render"])
                ui.attr("render", json.dumps({"frame": target, "render": plain(result["render"])}))
                break
        if target >= self.timeline.last and results and "hash" in results[-1]:
            ui.attr("state-hash", results[-1]["hash"])
        self.shown = self.heading = target
        self.show_frame()
        if measured:
            self.seeks += 1
            ui.attr("seek-ms", round(now_ms() - started, 2))
            ui.attr("seek-worker-ms", round(worker_ms, 3))
            ui.attr("seeks", self.seeks)

    # -- what shows beside the canvas ----------------------------------------------------------
    def note(self, name, text):
        item = el("note-" + name)
        if item is None:
            item = document.createElement("p")
            item.id = "note-" + name
            item.className = "note " + name
            el("notes").appendChild(item)
        item.textContent = text

    def verdict(self, digest):
        recorded = self.data.get("recorded_hash")
        if recorded is None:
            why = self.data.get("replay_error")
            self.note("hash", "Final state hash " + digest + "; no recorded hash to compare"
                      + (" (the server's replay could not run: " + why + ")" if why else "") + ".")
            return
        ui.attr("recorded-hash", recorded)
        ui.attr("hash-match", "1" if recorded == digest else "0")
        what = "the server's replay" if self.data["kind"] == "episode" or self.data.get("replay_hash") \
            else "the browsers' final hash"
        if recorded == digest:
            self.note("hash", "Final state hash " + digest + " equals " + what + ".")
        else:
            self.note("hash", "Final state hash " + digest + " differs from " + what + " (" + recorded + ").")

    def show_frame(self):
        n = self.shown
        ui.frame(n)
        el("scrub").value = n
        el("frame-no").textContent = str(n)
        el("goto").placeholder = str(n)
        lines = []
        if n == 0:
            lines.append("the state after reset (seed " + str(self.data["seed"]) + ")")
        else:
            lines_of("actions (step " + str(n) + ", from frame " + str(n - 1) + ")",
                     self.timeline.inputs[n - 1], lines)
            rows = self.recorded(n)
            if rows is None:
                lines.append("(loading the recorded data…)")
            elif rows:
                for label in sorted(rows):
                    row = rows[label]
                    lines.append("")
                    lines.append("— recorded by " + label + "'s browser —")
                    for key in ("rewards", "done", "info", "metrics"):
                        lines_of(key, row.get(key), lines)
                    if row.get("t_sent") is not None and row.get("t_received") is not None:
                        trip = round(row["t_received"] - row["t_sent"], 2)
                        lines.append("step round trip: " + str(trip) + " ms")
            else:
                replayed = self.replayed(n)
                lines.append("")
                lines.append("— replayed here (no recorded row) —")
                if replayed is not None:
                    for key in ("rewards", "done", "info"):
                        lines_of(key, replayed.get(key), lines)
        problem = self.data.get("first_bad")
        if problem is not None and n == problem["frame"]:
            lines.append("")
            lines.append("! " + problem["reason"])
        el("frame-data").textContent = "\n".join(lines)

    def replayed(self, n):
        if self.last_step is not None and self.last_step[0] == n:
            return self.last_step[1]
        return self.key_results.get(n)

    def recorded(self, n):
        """The recorded rows of frame n ({} if none), or None while its chunk is on its way."""
        chunk = n // DETAIL_CHUNK
        for ahead in (chunk, chunk + 1):
            wanted = ahead not in self.details and ahead not in self.asked
            if wanted and ahead * DETAIL_CHUNK <= self.timeline.last:
                self.asked.add(ahead)
                asyncio.create_task(self.load_details(ahead))
        rows = self.details.get(chunk)
        if rows is None:
            return None
        return rows.get(n, {})

    async def load_details(self, chunk):
        lo = chunk * DETAIL_CHUNK
        try:
            url = self.cfg["frames_url"] + "?from=" + str(lo) + "&to=" + str(lo + DETAIL_CHUNK)
            got = await fetch_json(url)
        except Exception as exc:  # noqa: BLE001 - shown beside the frame, the replay goes on
            self.asked.discard(chunk)
            self.note("details", "could not load the recorded frames: " + str(exc))
            return
        rows = {}
        for item in got["frames"]:
            rows[item["frame"]] = item["records"]
        self.details[chunk] = rows
        while len(self.details) > KEEP_CHUNKS:  # the farthest from the frame shown goes
            here = self.shown // DETAIL_CHUNK
            far = max(self.details, key=lambda c: abs(c - here))
            del self.details[far]
            self.asked.discard(far)
        if self.shown // DETAIL_CHUNK == chunk:
            self.show_frame()

    # -- controls ------------------------------------------------------------------------------------
    def wake(self):
        waiters, self.waiters = self.waiters, []
        for resolve in waiters:
            resolve(True)

    def pause_for(self, ms):
        def executor(resolve, reject):
            self.waiters.append(resolve)
            if ms is not None:
                js.setTimeout(resolve, ms)
        return js.Promise.new(executor)

    def seek(self, frame):
        self.want = self.timeline.clamp(frame)
        self.wake()

    def set_playing(self, playing):
        self.playing = playing
        ui.attr("playing", "1" if playing else "0")
        el("play").textContent = "Pause" if playing else "Play"
        self.restart_clock()
        self.wake()

    def restart_clock(self):
        self.clock_t = now_ms()
        self.clock_frame = self.shown

    def toggle(self, *args):
        if not self.playing and self.shown >= self.timeline.last:
            self.seek(0)  # at the end: play again from the start
        self.set_playing(not self.playing)

    def step_by(self, delta):
        if self.playing:
            self.set_playing(False)
        # from the frame asked for or on its way, not the one still shown: quick presses add up
        self.seek((self.want if self.want is not None else self.heading) + delta)

    def set_speed(self, *args):
        self.speed = float(str(el("speed").value))
        ui.attr("speed", self.speed)
        self.restart_clock()
        self.wake()

    def bind(self):
        el("play").addEventListener("click", self.toggle)
        el("back").addEventListener("click", lambda *a: self.step_by(-1))
        el("forward").addEventListener("click", lambda *a: self.step_by(1))
        el("speed").addEventListener("change", self.set_speed)
        el("scrub").addEventListener("input", lambda *a: self.seek(int(str(el("scrub").value))))

        def go_to(*args):
            value = str(el("goto").value).strip()
            if value:
                self.seek(int(float(value)))

        el("go").addEventListener("click", go_to)

        def on_key(event):
            if event.key == "Enter" and str(event.target.id) == "goto":
                go_to()
                return
            tag = str(event.target.tagName)
            if tag in ("INPUT", "SELECT") or (tag == "BUTTON" and event.key in (" ", "Enter")):
                return  # the control's own keys (a focused button clicks itself)
            if event.key == "ArrowLeft":
                self.step_by(-1)
            elif event.key == "ArrowRight":
                self.step_by(1)
            elif event.key == " ":
                self.toggle()
            else:
                return
            event.preventDefault()

        document.addEventListener("keydown", on_key)
        problem = self.data.get("first_bad")
        if problem is not None:
            button = el("to-problem")
            button.removeAttribute("hidden")
            button.addEventListener("click", lambda *a: self.seek(problem["frame"]))

    # -- the loop ------------------------------------------------------------------------------------
    async def run(self):
        """The one place that drives the worker: the controls only say what they want."""
        while True:
            if self.want is not None:
                target, self.want = self.want, None
                await self.go(target, True)
                self.restart_clock()
                continue
            if not self.playing:
                await self.pause_for(None)
                continue
            if self.shown >= self.timeline.last:
                self.set_playing(False)
                continue
            rate = self.fps * self.speed / 1000  # frames per ms
            due = self.clock_frame + int((now_ms() - self.clock_t) * rate)
            if due > self.shown:
                await self.go(min(due, self.timeline.last))
            wait = self.clock_t + (self.shown + 1 - self.clock_frame) / rate - now_ms()
            await self.pause_for(max(1, int(wait)))


async def main():
    from pages.games import GamePreparer
    from pages.renderer import CanvasRenderer

    cfg = json.loads(el("viewer-config").textContent)
    data_task = asyncio.create_task(fetch_json(cfg["data_url"]))
    booting = asyncio.create_task(boot(cfg, data_task))
    preparer = GamePreparer(booting, {cfg["scene_id"]: cfg["game"]}, cfg["experiment"], ui)
    channel = await preparer.ready(cfg["scene_id"])
    data = await data_task
    ui.set_stage("indexing")
    renderer = CanvasRenderer(el("canvas"), cfg["asset_base"])
    viewer = Viewer(cfg, data, channel, renderer)
    ui.attr("every", viewer.timeline.every)
    ui.attr("frames", viewer.timeline.last)
    ui.attr("speed", 1)
    ui.attr("playing", "0")
    el("scrub").max = viewer.timeline.last
    el("frame-total").textContent = str(viewer.timeline.last)
    reset = await channel.request(m.RESET, {"seed": data["seed"], "slot": cfg["scene_id"]})
    renderer.draw(reset["render"])
    await viewer.first_pass()
    problem = data.get("first_bad")
    if problem is not None:
        viewer.note("problem", problem["reason"])
    opened = url_int("frame")
    if opened is None:
        opened = problem["frame"] if problem is not None else 0
    await viewer.go(opened)
    ui.attr("opened-at", viewer.shown)
    viewer.bind()
    ui.set_stage("ready")
    ui.playing()
    log("replay viewer ready:", data["kind"], data["id"], viewer.timeline.last, "frames, keyframes every",
        viewer.timeline.every)
    await viewer.run()


async def guarded():
    try:
        await main()
    except WorkerError as exc:
        fatal(str(exc), exc.reply.get("traceback", ""))
    except ChannelDead as exc:
        fatal(str(exc))
    except Exception as exc:
        fatal("unexpected error in the viewer: " + type(exc).__name__ + ": " + str(exc))
        raise


asyncio.create_task(guarded())
