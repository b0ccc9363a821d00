"""The game scenes of a visit, all in the page's one env worker: Pyodide boots once, each
scene's env is loaded into a slot of its own (installing only packages not yet installed),
and the next scene's env is prepared in the background while the participant is still on
the scene before it. A scene plays its episodes with a screen between them."""

import asyncio

from pages.jsbridge import mark, now_ms, sleep_ms
from protocol import messages as m
from protocol.scenes import seat_policies


class GamePreparer:
    def __init__(self, booting, games, root, ui):
        self.booting = booting  # task: the channel, once the worker is up
        self.games = games  # scene id -> game settings (server/study/games.py client_game)
        self.root = root  # the experiment's folder name in the worker's file system
        self.ui = ui
        self.tasks = {}
        self._last = None  # preparations run one after another, in the order asked
        self.showing = None  # the game scene the participant is on
        self.first_done = False

    def prepare(self, scene_id):
        if scene_id not in self.tasks:
            self.tasks[scene_id] = asyncio.create_task(self._prepare(scene_id, self._last))
            self._last = self.tasks[scene_id]
        return self.tasks[scene_id]

    def prepare_next(self, plan, index):
        """Start preparing the first game scene after position `index` of the path."""
        for scene in plan[index + 1:]:
            if scene["type"] == "game":
                self.prepare(scene["id"])
                return

    async def _prepare(self, scene_id, before):
        channel = await self.booting
        if before is not None:
            try:
                await before
            except Exception:  # noqa: BLE001 - its own scene reports it
                pass
        game = self.games[scene_id]
        await channel.request(m.INSTALL_PACKAGES, {"packages": game["packages"]})
        if self.showing == scene_id:
            self.ui.progress("Loading environment…", 88)
        await channel.request(m.SET_GLOBALS, {"slot": scene_id, "globals": {
            "env_config": game["env_config"], "players": game["players"]}})
        loaded = await channel.request(m.RUN_INIT_CODE, {
            "slot": scene_id, "code": game["env_source"], "filename": game["env_filename"],
            "files": game["env_files"], "root": self.root, "partners": seat_policies(game),
            "room": game["multiplayer"] is not None})
        if "partners_ms" in loaded:  # AI seats set up (ONNX sessions created and warmed up)
            self.ui.attr("partners-ms-" + scene_id, str(loaded["partners_ms"]))
        if "model_run_ms" in loaded:
            self.ui.attr("model-run-ms-" + scene_id, str(loaded["model_run_ms"]))
        mark("env-ready:" + scene_id)
        if not self.first_done:
            self.first_done = True
            mark("env-ready")  # the visit's first env: Pyodide, packages and env all up
        return channel

    async def ready(self, scene_id):
        """The channel, once this scene's env is loaded; the loader shows while it is not."""
        self.showing = scene_id
        mark("scene-start:" + scene_id)
        task = self.prepare(scene_id)
        if not task.done() and self.ui.boot == "booted":
            self.ui.boot = "installing"  # a later scene still loading: the loader again
            self.ui.percent = 0
        self.ui.enter_game()
        channel = await task
        self.ui.progress("Ready", 100)
        self.ui.boot_stage("booted")
        mark("scene-playable:" + scene_id)
        return channel


def between_text(game, episode, score):
    key = "Space" if game["start_key"] == " " else game["start_key"]
    text = game["between_episodes"]
    for name, value in (("episode", episode), ("episodes", game["episodes"]), ("score", score), ("key", key)):
        text = text.replace("{" + name + "}", str(value))
    return text


def format_score(value):
    number = float(value)
    return str(int(number)) if number == int(number) else str(round(number, 2))


async def wait_key_or(key, seconds):
    """Resolve on `key`, or after `seconds` when that is not None."""
    import js

    def executor(resolve, reject):
        def on_key(event):
            if event.key == key:
                event.preventDefault()
                js.document.removeEventListener("keydown", on_key)
                resolve(True)
        js.document.addEventListener("keydown", on_key)
        if seconds is not None:
            def timeout(*args):
                js.document.removeEventListener("keydown", on_key)
                resolve(False)
            js.setTimeout(timeout, seconds * 1000)

    await js.Promise.new(executor)


async def play_scene(scene, game, channel, ctx, ui):
    """One game scene: its episodes, one after another, within its time limit. Returns the
    last episode's result, with the outcome the scene ends on (`time_up` when the limit ended it)."""
    from pages.game import play_episode

    ctx.selector.configure(game["controls"], game["default_action"])
    ui.attr("scene", scene["id"])
    deadline = now_ms() + game["time_limit"] * 1000 if game["time_limit"] else None
    result = {"outcome": "completed"}
    resumed = None
    if game["multiplayer"]:  # reloaded mid-episode: back into the seat held, no start key
        from pages.multiplayer import reclaim_seat

        resumed = await reclaim_seat(ctx.socket, ui, ctx.cfg["experiment"], scene["id"])
    else:  # reloaded mid-episode: the same episode, from the frame it reached
        from pages.game import reclaim_episode

        resumed = await reclaim_episode(ctx.cfg, ctx.socket, ctx.outbox, ui, scene["id"])
    first = resumed["episode_index"] if resumed is not None else 0
    for episode in range(first, game["episodes"]):
        ui.set_stage("ready")
        ui.attr("episode", episode)
        if resumed is not None and episode == first:
            pass
        elif episode == 0:
            if not game["auto_start"]:
                ui.message(game["instructions"] or "Press Space to start.")
                await wait_key_or(game["start_key"], None)
        else:
            ui.message(between_text(game, episode, format_score(result.get("total_reward", 0))))
            await wait_key_or(game["start_key"], 0 if game["auto_start"] else game["auto_advance"])
        episode_info = {"scene_id": scene["id"], "episode_index": episode}
        if game["multiplayer"]:
            from pages.multiplayer import play_multiplayer

            result = await play_multiplayer(game, episode_info, channel, ctx, ui,
                                            resumed if episode == first else None)
        else:
            result = await play_episode(game, episode_info, channel, ctx, ui, deadline,
                                        resumed if episode == first else None)
        if result.get("outcome", "completed") != "completed":
            return result
        if deadline is not None and now_ms() >= deadline:
            # (a multiplayer episode always plays to its end, so every browser stays in step:
            # its scene's time limit is checked between episodes)
            result["time_up"] = True
            return result
        await sleep_ms(0)
    return result
