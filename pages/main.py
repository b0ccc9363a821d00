"""Experiment page, main thread (MicroPython): loader -> env in the worker -> game.

Boot order: connect Socket.IO, find the env runtime (PyScript worker, or the
main-thread baseline with ?worker=0), await READY, then INIT, INSTALL_PACKAGES,
SET_GLOBALS, RUN_INIT_CODE; show the start screen; play; upload; done."""

import js

js.performance.mark("coplay:main-start")  # first line of our main-thread code

import asyncio  # noqa: E402
import json  # noqa: E402

from js import document, window  # noqa: E402

from pages.channel import ChannelClient, ChannelDead, WorkerError  # noqa: E402
from pages.jsbridge import js_get, log, mark, new_id, now_ms, sleep_ms, try_set_item, wait_on  # noqa: E402
from pages.outbox import Outbox, SpillingStorage  # noqa: E402
from pages.socket_client import GameSocket  # noqa: E402
from pages.ui import Ui  # noqa: E402
from protocol import messages as m  # noqa: E402
from protocol.scenes import next_scene  # noqa: E402

ID_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "participant_id")

RESEND_CHUNK = 1000
LEFTOVER_WAIT_MS = 15000

ui = Ui()


def new_stream_id():
    # sorts by creation time, so an earlier page load's leftovers are delivered first
    return str(int(now_ms())) + "-" + new_id()[:8]


def show_saving(outbox):
    ui.attr("saving", "waiting" if outbox.waiting else "ok")
    if outbox.storage.spilled:
        ui.attr("spilled", outbox.storage.spilled)  # localStorage was full: kept in memory
    ui.attr("saved", sum(outbox.steps_delivered.values()))


def url_params():
    params = {}
    search = js.URLSearchParams.new(window.location.search)
    for name in ID_PARAMS:
        value = search.get(name)
        if value is not None:
            params[name] = str(value)
    return params


def participant_id(params):
    if "PROLIFIC_PID" in params:
        return params["PROLIFIC_PID"]
    if "participant_id" in params:
        return params["participant_id"]
    stored = window.localStorage.getItem("coplay:participant")
    if stored is not None:
        return str(stored)
    pid = new_id()
    try_set_item(window.localStorage, "coplay:participant", pid)  # full storage: an id for this load only
    return pid


async def find_transport(in_worker):
    """The object we postMessage to: the PyScript worker, or (baseline) the port the
    main-thread Pyodide publishes."""
    while True:
        if in_worker:
            script = document.querySelector("script[type=py][worker]")
            found = js_get(script, "xworker") if script is not None else None
        else:
            found = js_get(window, "coplayEnvPort")
        if found is not None:
            return found
        await sleep_ms(10)


def on_pyscript_progress(event):
    detail = js_get(event, "detail")
    if detail is not None and ui.stage == "loading":
        ui.progress(str(detail) + "…", 10)


class Fatal:
    def __init__(self, outbox):
        self.outbox = outbox
        self.reported = False

    def __call__(self, reason, detail=None):
        if self.reported:
            return
        self.reported = True
        ui.error(reason if not detail else reason + "\n\n" + detail)
        if self.outbox is not None:
            self.outbox.put("client_event", {"kind": "worker_error", "detail": {"message": reason}})


def on_progress(msg):
    stage = msg["stage"]
    if stage == "installing":
        ui.progress(msg["message"], 50 + 35 * msg["fraction"])
    else:
        ui.progress(msg["message"], 90)


def bind_keyboard(selector):
    def down(event):
        if selector.key_down(event.key):
            event.preventDefault()

    def up(event):
        selector.key_up(event.key)

    def blur(*args):
        selector.clear()

    document.addEventListener("keydown", down)
    document.addEventListener("keyup", up)
    window.addEventListener("blur", blur)


class Hello:
    """The server's hello (scene to resume, condition, env config), asked once at start
    and awaited by both the boot (env config) and the scene flow."""

    def __init__(self, socket, outbox):
        self.reply = None
        self._waiters = []
        asyncio.create_task(self._ask(socket, outbox))

    async def _ask(self, socket, outbox, attempts=5):
        # What an earlier page load could not deliver goes first: its scene results move
        # the participant on, so the server's answer below is up to date.
        outbox.seal_leftovers(RESEND_CHUNK)
        leftovers = outbox.queued_step_records()
        await outbox.flush(LEFTOVER_WAIT_MS)
        ui.attr("resent", leftovers)
        screen = window.screen
        client = {"user_agent": str(window.navigator.userAgent), "language": str(window.navigator.language),
                  "screen": str(screen.width) + "x" + str(screen.height),
                  "viewport": str(window.innerWidth) + "x" + str(window.innerHeight)}
        # retried: a busy main thread (or network) can let one acknowledgement time out
        for _ in range(attempts):
            self.reply = await socket.call("hello", {"stream": outbox.stream, "client": client})
            if self.reply.get("ok"):
                break
        for resolve in self._waiters:
            resolve(True)
        self._waiters = []

    async def get(self):
        if self.reply is None:
            await wait_on(self._waiters)
        if not self.reply.get("ok"):
            raise RuntimeError("could not reach the server: " + str(self.reply.get("error")))
        return self.reply


async def boot(cfg, fatal):
    """Pyodide, once per visit: the worker comes up and is told its settings. Each game
    scene's env is then loaded into it by the GamePreparer (pages/games.py)."""
    window.addEventListener("py:progress", on_pyscript_progress)
    ui.progress("Loading Pyodide…", 5)
    transport = await find_transport(cfg["worker"])
    channel = ChannelClient(transport, cfg["timeouts_ms"], on_progress, fatal)
    ready = await channel.wait_ready()
    mark("worker-ready")
    log("env runtime ready:", ready["runtime"], "python", ready["python"])
    ui.progress("Starting Python…", 40)
    # snapshots the rollback may need: the largest prediction window plus input delay, with slack
    # onnx_wasm: where onnxruntime-web's .wasm is served, when a policy is an ONNX model
    options = {"ring_size": cfg["ring_size"], "onnx_wasm": cfg.get("onnx_wasm")}
    await channel.request(m.INIT, {"options": options})
    ui.boot_stage("installing")
    ui.progress("Installing packages…", 50)
    return channel


class Visit:
    """What every scene of the visit shares: settings, socket, outbox, keyboard, canvas."""

    def __init__(self, cfg, socket, outbox):
        self.cfg = cfg
        self.socket = socket
        self.outbox = outbox
        self.selector = None
        self.renderer = None

    def open_game(self, game):
        from pages.controls import ActionSelector
        from pages.renderer import CanvasRenderer

        if self.selector is None:
            self.selector = ActionSelector(game["controls"], game["default_action"])
            self.renderer = CanvasRenderer(document.getElementById("canvas"), self.cfg["asset_base"])
            bind_keyboard(self.selector)


def on_uncaught(event):
    # A JS exception raised under a Python callback escapes try/except; never let it
    # leave the participant on a frozen screen.
    if ui.stage not in ("done", "error"):
        reason = js_get(event, "reason") or js_get(event, "error") or js_get(event, "message")
        ui.error("unexpected page error: " + str(js.String(reason)))


def show_game_result(result):
    ui.set_stage("done")
    outcome = result.get("outcome", "completed")
    ui.attr("outcome", outcome)
    if outcome == "wait_timeout":
        if result.get("redirect"):
            window.location.href = result["redirect"]
        text = result["message"]
        if result.get("completion_code"):  # partners who did not come back: partial pay
            text += " Your completion code: " + result["completion_code"]
            ui.attr("completion-code", result["completion_code"])
        ui.message(text)
    elif outcome == "partner_left":
        left = result.get("partner_left") or {}
        text = left.get("message") or "Your partner left the game. Your data has been saved — thank you!"
        if left.get("completion_code"):
            text += " Your completion code: " + left["completion_code"]
            ui.attr("completion-code", left["completion_code"])
        ui.message(text)
    elif outcome == "screened_out":
        if result.get("redirect"):
            window.location.href = result["redirect"]
        text = result["message"]
        if result.get("completion_code"):
            text += " Your completion code: " + result["completion_code"]
            ui.attr("completion-code", result["completion_code"])
        ui.message(text)
    elif outcome == "focus_lost":
        ui.message("The game ended because this tab was in the background for too long.")
    elif outcome in ("declined", "closed"):
        ui.message(result["message"])
    elif outcome == "already_completed":
        ui.message("You have already completed this study. Thank you!")
    else:
        score = result.get("total_reward", "")
        text = "Episode complete" + (" — score " + str(score) if score != "" else "")
        ui.message(text + ". Thank you!", True)


async def run_scenes(visit, preparer, ids, hello):
    """Walk the participant through the study's scenes, from where the server says they are."""
    import pages.scenes as scenes
    from pages.games import play_scene

    outbox = visit.outbox
    index = hello["scene_index"]
    plan = hello["scenes"]  # this participant's path (their condition may have its own)
    types = [s["type"] for s in plan]
    result = {"outcome": "already_completed"}
    preparer.prepare_next(plan, index - 1)  # the next game loads while earlier scenes show
    while index < len(plan):
        scene = plan[index]
        kind = scene["type"]
        answers = None
        if kind == "end":
            await save_everything(outbox)  # before any redirect back to the recruiter
            await scenes.end(scene, ui, ids)
            return None
        if kind == "game":
            game = preparer.games[scene["id"]]
            channel = await preparer.ready(scene["id"])
            visit.open_game(game)
            preparer.prepare_next(plan, index)
            result = await play_scene(scene, game, channel, visit, ui)
            outcome = result.get("outcome", "completed")
            if outcome in ("wait_timeout", "screened_out"):
                # nothing more to do here: the fallback takes over, or in-play screening
                # excluded the participant (their progress ended on the server)
                return result
        else:
            preparer.prepare_next(plan, index)
            if kind == "consent":
                outcome, answers = await scenes.consent(scene, ui)
                if outcome == "declined":
                    result = {"outcome": "declined", "message": scene["decline_message"]}
            elif kind == "instructions":
                outcome, answers = await scenes.instructions(scene, ui)
            else:
                outcome, answers = await scenes.survey(scene, ui)
        report = {"index": index, "scene_id": scene["id"], "outcome": outcome}
        if answers is not None:
            report["answers"] = answers
        # queued like every other record: the participant moves on even while the server
        # is away, and the server learns of it (in order) when it is back
        outbox.put("scene_done", report)
        index = next_scene(types, index, outcome)
    await save_everything(outbox)
    return result


async def save_everything(outbox):
    """The study is over: keep the participant here until the server has every record
    (it may be restarting); only then thank them and let them go."""
    if await outbox.flush(2000):
        return
    ui.set_stage("saving")
    ui.message("Saving your data… please keep this tab open.")
    while not await outbox.flush(2000):
        pass


async def main():
    window.addEventListener("error", on_uncaught)
    window.addEventListener("unhandledrejection", on_uncaught)
    cfg = json.loads(document.getElementById("coplay-config").textContent)
    params = url_params()
    pid = participant_id(params)
    ids = dict(params)
    ids["participant_id"] = pid
    socket = GameSocket({"participant_id": pid, "experiment": cfg["experiment"],
                         "url_params": params}, ui)
    outbox = Outbox(SpillingStorage(window.localStorage, try_set_item), socket.call_text, sleep_ms, pid,
                    new_stream_id(), show_saving)
    fatal = Fatal(outbox)
    try:
        hello_box = Hello(socket, outbox)
        booting = asyncio.create_task(boot(cfg, fatal))
        # Game modules are compiled while the worker boots, each in a task of its own, so
        # our main-thread start-up is never one long block.
        await sleep_ms(0)
        import pages.game  # noqa: F401
        await sleep_ms(0)
        import pages.renderer  # noqa: F401
        await sleep_ms(0)
        from pages.games import GamePreparer

        hello = await hello_box.get()
        if hello.get("closed"):  # the researcher closed the study to new arrivals
            show_game_result({"outcome": "closed", "message": hello["message"]})
            return
        if cfg.get("screening") and (hello["scene_index"] == 0 or hello["outcome"] == "screened_out"):
            from pages.screening import screen

            excluded = await screen(cfg["screening"], socket, ui)
            if excluded is not None:
                excluded["outcome"] = "screened_out"
                show_game_result(excluded)
                return
        ui.attr("condition", hello["condition"] or "")
        # the participant's condition may play its games with other settings
        preparer = GamePreparer(booting, hello.get("games") or cfg["games"], cfg["experiment"], ui)
        search = js.URLSearchParams.new(window.location.search)
        if search.get("bench") == "1" or search.get("synctest") is not None:
            first = [s["id"] for s in hello["scenes"] if s["type"] == "game"][0]
            channel = await preparer.ready(first)
            game = dict(cfg)  # the page's settings with the first game's
            game.update(preparer.games[first])
            if search.get("bench") == "1":
                from pages.bench import run_channel_bench

                await run_channel_bench(channel, game, ui)
            else:
                from pages.synctest import run_in_page

                await run_in_page(channel, game, ui, int(search.get("synctest")))
            ui.set_stage("done")
            return
        result = await run_scenes(Visit(cfg, socket, outbox), preparer, ids, hello)
    except WorkerError as exc:
        fatal(str(exc), exc.reply.get("traceback", ""))
        return
    except ChannelDead as exc:
        fatal(str(exc))
        return
    except Exception as exc:
        fatal("unexpected error on the page: " + type(exc).__name__ + ": " + str(exc))
        raise
    if result is not None:
        show_game_result(result)


asyncio.create_task(main())
