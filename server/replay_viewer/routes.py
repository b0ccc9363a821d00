"""The replay viewer's routes, all behind the admin login (server/admin/routes.py's gate:
404 with admin access off, 401 without a session or the bearer token):

- ``GET /admin/replay/<experiment>/``: the experiment's recorded rooms and episodes, newest
  first, each with a link to watch it;
- ``GET /admin/replay/<experiment>/<room|episode>/<id>``: the viewer page. The experiment's env
  runs in the page's Pyodide worker exactly as on a game page (the same worker, configs and
  INIT / INSTALL_PACKAGES / SET_GLOBALS / RUN_INIT_CODE, its own renderer), played from the
  seed and the recorded inputs (pages/viewer/). PyScript needs scripts, WebAssembly and a
  worker, so this page has a CSP of its own (VIEWER_CSP: our origin only) instead of the
  admin pages' ``default-src 'none'``;
- ``GET …/data.json``: the record the viewer plays (seed, every step's actions, statuses,
  hashes, where a failed room should open; for a single-player episode also the hash of the
  server's CPython replay of it, the reference the viewer's final state is checked against);
- ``GET …/frames.json?from=a&to=b``: the recorded per-frame rows (rewards, info, netcode
  metrics, timestamps) of frames a..b-1, a chunk at a time.

Also, unauthenticated like the game pages' own: ``/config/viewer.toml`` (the main thread's
PyScript config with the viewer's modules) and ``/src/pages/viewer/<file>``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from quart import Quart, Response, abort, current_app, render_template, request, send_file
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.admin.routes import require_admin
from server.data.storage import create_engine
from server.multiplayer.replay import ReplayFailed
from server.multiplayer.replay_pool import Replays
from server.replay_viewer import records
from server.settings import ROOT
from server.study.experiment import Experiment
from server.study.games import GameSpec, client_game
from server.study.packages import PackageConfigError, PackageSource
from server.transport.web import VENDOR_ROUTE, _files_table, client_config, pyscript_configs

VIEWER_DIR = ROOT / "pages" / "viewer"
# What PyScript needs, from our own origin only (found by trial in Chromium: each one left
# out breaks the page): its module scripts; WebAssembly (MicroPython, Pyodide); eval (PyScript's
# core evaluates code, and falls back to its CDN without it); its worker, which it starts from a
# blob: URL; fetches of configs, sources, wheels and the record. Images: the experiment's sprites.
VIEWER_CSP = ("default-src 'none'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; "
              "worker-src 'self' blob:; connect-src 'self'; img-src 'self'; style-src 'self'; "
              "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# the viewer's worker requests run long BATCHes (a first pass over the whole episode, in chunks)
VIEWER_BATCH_MS = 30_000


def viewer_config(vendor_prefix: str) -> str:
    """The game pages' main-thread config plus the viewer's own modules."""
    files = _files_table(("pages/viewer",)).split("\n", 1)[1]
    return pyscript_configs(vendor_prefix)["mpy"] + files + "\n"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def game_of(exp: Experiment, condition: str | None, scene_id: str | None) -> GameSpec | None:
    """The game a record was played in, as its condition plays it (None: no such scene now)."""
    try:
        return exp.game(condition, scene_id)
    except (KeyError, StopIteration):
        return None


def register_replay_viewer(app: Quart, experiments: dict[str, Experiment], packages: PackageSource,
                           database: Path | str, vendor_version: str) -> None:
    gate = require_admin(app)
    vendor_prefix = f"{VENDOR_ROUTE}{vendor_version}/"
    config_text = viewer_config(vendor_prefix)
    engines: list[AsyncEngine] = []  # one read-only engine, made on first use

    def reader():
        if not engines:
            engines.append(create_engine(database, readonly=True))
        return engines[0].connect()

    @app.after_serving
    async def close_reader() -> None:
        while engines:
            await engines.pop().dispose()

    def admitted(name: str) -> Experiment:
        """The experiment an admin asks for. Anyone else gets the admin gate's answer (404 with
        admin access off, else 401), an admin 404 for no such experiment; both raised."""
        if (denied := gate.denied()) is not None:
            abort(denied)
        if name not in experiments:
            abort(404)
        return experiments[name]

    async def load(conn: AsyncConnection, exp: Experiment, kind: str, rid: str) -> tuple[dict, GameSpec]:
        """The record (404 if there is none) and the game it was played in."""
        if kind == "episode":
            row = await records.read_episode(conn, exp.name, rid)
            if row is None:
                abort(404)
            if row["client"].get("room"):  # a room's browser stored it: the room is what to watch
                return await load(conn, exp, "room", row["client"]["room"])
            game = game_of(exp, row["condition"], row["scene_id"])
            if game is None:
                abort(404)
            return await records.episode_record(conn, row, game.players), game
        if kind != "room":
            abort(404)
        row = await records.read_room(conn, exp.name, rid)
        if row is None:
            abort(404)
        game = game_of(exp, row["condition"], row["scene_id"])
        if game is None:
            abort(404)
        record = records.room_record(row, game.default_action, game.players)
        record["recordings"] = await records.room_episodes(conn, exp.name, rid)
        return record, game

    async def admitted_record(name: str, kind: str, rid: str) -> tuple[Experiment, dict, GameSpec]:
        """An admin's record to watch: the experiment, the record and its game (404s as `load`)."""
        exp = admitted(name)
        async with reader() as conn:
            record, game = await load(conn, exp, kind, rid)
        return exp, record, game

    @app.get("/admin/replay/<name>/")
    async def replay_list(name: str):
        exp = admitted(name)
        async with reader() as conn:
            found = await records.listing(conn, name)
        for item in found["rooms"]:
            item["when"] = _when(item["created"])
        for item in found["episodes"]:
            item["when"] = _when(item["started"])
        return await render_template("viewer/list.html", exp=exp, rooms=found["rooms"],
                                     episodes=found["episodes"], limit=records.LIST_LIMIT)

    @app.get("/admin/replay/<name>/<kind>/<rid>")
    async def viewer_page(name: str, kind: str, rid: str):
        exp, record, game = await admitted_record(name, kind, rid)
        try:
            resolved = packages.for_experiment(exp)
        except PackageConfigError as exc:
            return Response(f"Experiment misconfigured: {exc}", status=500, mimetype="text/plain")
        page = client_config(exp, resolved, True, vendor_prefix)
        # the env as a game page loads it; no AI seats: the record holds their actions too
        played = client_game(game, exp.env_files, f"/x/{exp.name}/files/", resolved.entries, None)
        played["stand_in"] = None
        timeouts = dict(page["timeouts_ms"], BATCH=max(page["timeouts_ms"]["BATCH"], VIEWER_BATCH_MS))
        base = f"/admin/replay/{exp.name}/{record['kind']}/{record['id']}"
        cfg = {"experiment": exp.name, "title": page["title"], "canvas": page["canvas"],
               "asset_base": page["asset_base"], "timeouts_ms": timeouts, "kind": record["kind"],
               "id": record["id"], "scene_id": game.scene_id, "game": played, "data_url": base + "/data.json",
               "frames_url": base + "/frames.json", "list_url": f"/admin/replay/{exp.name}/"}
        body = await render_template("viewer/viewer.html", title=page["title"], record=record,
                                     vendor=vendor_prefix.rstrip("/"), config=cfg,
                                     canvas_w=exp.canvas[0], canvas_h=exp.canvas[1])
        return Response(body, mimetype="text/html", headers={"Content-Security-Policy": VIEWER_CSP})

    @app.get("/admin/replay/<name>/<kind>/<rid>/data.json")
    async def viewer_data(name: str, kind: str, rid: str):
        exp, record, game = await admitted_record(name, kind, rid)
        record["fps"] = game.fps
        record["default_action"] = game.default_action
        if record["kind"] == "episode" and record["frames"]:
            record.update(await server_replay(exp, game, record))
        return record

    @app.get("/admin/replay/<name>/<kind>/<rid>/frames.json")
    async def viewer_frames(name: str, kind: str, rid: str):
        exp = admitted(name)
        lo = request.args.get("from", 0, type=int)
        hi = request.args.get("to", lo + records.MAX_DETAIL_FRAMES, type=int)
        lo, hi = max(0, lo), max(0, min(hi, lo + records.MAX_DETAIL_FRAMES))
        async with reader() as conn:
            recordings, offset = await recordings_of(conn, exp, kind, rid)
            rows = await records.frame_details(conn, recordings, offset, lo, hi)
        return {"from": lo, "to": hi, "frames": rows}

    async def recordings_of(conn: AsyncConnection, exp: Experiment, kind: str, rid: str) -> tuple[dict, int]:
        """label -> episode id of the recordings, and how their row frames map to the viewer's."""
        if kind == "episode":
            row = await records.read_episode(conn, exp.name, rid)
            if row is None:
                abort(404)
            if not row["client"].get("room"):
                return {"participant": rid}, 0
            kind, rid = "room", row["client"]["room"]
        if kind != "room" or await records.read_room(conn, exp.name, rid) is None:
            abort(404)
        return await records.room_episodes(conn, exp.name, rid), 1

    @app.get("/config/viewer.toml")
    async def viewer_pyscript_config():
        return Response(config_text, mimetype="application/toml")

    @app.get("/src/pages/viewer/<filename>")
    async def viewer_source(filename: str):
        path = (VIEWER_DIR / filename).resolve()
        if path.parent != VIEWER_DIR.resolve() or path.suffix not in (".py", ".css") or not path.is_file():
            abort(404)
        return await send_file(path)


async def server_replay(exp: Experiment, game: GameSpec, record: dict[str, Any]) -> dict[str, Any]:
    """The server's CPython replay of a single-player episode's recorded actions (through the
    replay pool): the hash the viewer's final state is checked against, or why it could not run."""
    replays = current_app.extensions.get("coplay", {}).get("replays") or Replays(workers=0)
    inputs = {p: {g: actions.get(p, game.default_action) for g, actions in enumerate(record["inputs"])}
              for p in record["players"]}
    try:
        result = await replays.run(exp, game, record["players"], record["seed"], inputs, record["frames"] - 1)
    except ReplayFailed as exc:
        return {"replay_hash": None, "replay_error": str(exc)}
    return {"replay_hash": result["hash"], "recorded_hash": result["hash"], "replay_error": None}
