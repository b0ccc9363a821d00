"""``python -m pilot EXPERIMENT --participants N --concurrency C [--url URL]`` (or
``nox -s pilot -- …``): simulated participants walk the study; exits 1 with the reasons
when a participant hit an error, a room did not end ``completed`` or a data check failed.

Without --url the pilot starts a server of its own on a throwaway database (the
experiments folder given, default experiments/), and checks the data there. With --url it
drives that deployment; the data checks then need --database (the server's setting) and
the export check --admin-token.

``--load ROOMS`` (load mode): ROOMS two-player rooms of simulated participants walk the study
to its first multiplayer game and play it at once, measured over a window (--warmup, then
--seconds): the relay's one-way latency p50/p99, inputs sent vs relayed vs refused vs lost,
rooms completed, the bots' own CPU and event-loop lag, and (a server of the pilot's own) the
server's CPU per relayed input; exits 1 unless within target (relay p99 <= 20 ms, nothing
lost or refused, every room completed). pilot/load.py; bench/load.py uses it too."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from pilot.checks import check_data, check_export, close_engines
from pilot.load import load_table, run_level, within_target
from pilot.local import ROOT, ServerRefused, free_port, launch
from pilot.participant import Options, Outcome, SimulatedParticipant, page_config
from pilot.report import build_report, table
from server.data.storage import create_engine


@contextlib.asynccontextmanager
async def chromium(needed: bool):
    """Headless Chromium for the --browsers participants (None when there are none)."""
    if not needed:
        yield None
        return
    from playwright.async_api import async_playwright

    from pilot.browsers import launch

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            yield browser
        finally:
            await browser.close()


async def run_participants(
    opts: Options, cfg: dict[str, Any], count: int, concurrency: int, arrive_every: float, browsers: int = 0
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)
    in_browser = (
        {i * count // browsers for i in range(browsers)} if browsers else set()
    )  # spread over arrivals
    async with aiohttp.ClientSession() as http, chromium(bool(in_browser)) as browser:

        async def one(index: int) -> Outcome:
            await asyncio.sleep(index * arrive_every)
            async with gate:
                bot = SimulatedParticipant(index, opts, cfg, http)
                if index in in_browser:
                    from pilot.browsers import browser_participant

                    return await browser_participant(
                        browser,
                        opts.url,
                        opts.experiment,
                        bot.pid,
                        bot.ids,
                        cfg,
                        bot.declines,
                        f"{opts.run_id}/{index}",
                    )
                return await bot.run()

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def browser_scenes(database: str | Path, outcomes: list[Outcome]) -> None:
    """A browser page's scenes, as the server recorded them (the page reports each)."""
    kinds = {s["id"]: s["type"] for o in outcomes for s in o.scenes}
    engine = create_engine(database, readonly=True)
    try:
        async with engine.connect() as conn:
            for o in outcomes:
                if not o.browser:
                    continue
                result = await conn.execute(
                    text(
                        "SELECT payload FROM events WHERE participant_id = :p AND kind = 'scene' ORDER BY id"
                    ),
                    {"p": o.participant},
                )
                o.scenes = [
                    {"id": s["id"], "type": kinds.get(s["id"], ""), "outcome": s["outcome"], "seconds": 0}
                    for s in (json.loads(p) for (p,) in result.all())
                ]
                end = next((k for k, t in kinds.items() if t == "end"), None)
                if end is not None and o.outcome in ("finished", "declined"):  # the end scene reports nothing
                    o.scenes.append({"id": end, "type": "end", "outcome": "reached", "seconds": 0})
    finally:
        await engine.dispose()


async def room_statuses(database: str | Path, outcomes: list[Outcome]) -> dict[str, str | None]:
    """Every room a pilot participant sat in (a browser page's too: by the room's players)."""
    ids = {e["room"] for o in outcomes for e in o.episodes if e.get("room")}
    pilots = {o.participant for o in outcomes}
    engine = create_engine(database, readonly=True)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text("SELECT id, status, players FROM rooms"))
            rows = {}
            for rid, status, players in result.all():
                rows[rid] = status
                if pilots & set(json.loads(players or "{}").values()):
                    ids.add(rid)
    finally:
        await engine.dispose()
    return {rid: rows.get(rid) for rid in sorted(ids)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pilot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment")
    parser.add_argument("--participants", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=10, help="participants in the study at once")
    parser.add_argument("--url", help="a running deployment (default: a server of the pilot's own)")
    parser.add_argument("--experiments-dir", type=Path, default=ROOT / "experiments")
    parser.add_argument("--database", help="with --url: the server's database, for the data checks")
    parser.add_argument("--admin-token", help="with --url: COPLAY_ADMIN_TOKEN, for the export check")
    parser.add_argument("--decline", type=float, default=0.0, help="share of participants declining consent")
    parser.add_argument(
        "--policy", help="an experiment policy for the participants' own seats (default random)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="frame rate multiplier (default 1: real time)"
    )
    parser.add_argument(
        "--net-delay", type=float, help="rooms behind the relay's network shaping (ms one way)"
    )
    parser.add_argument(
        "--arrive-every",
        type=float,
        help="seconds between arrivals (default 0.2; with --load 0.01 per bot process)",
    )
    parser.add_argument(
        "--browsers",
        type=int,
        default=0,
        help="this many of the participants play in headless Chromium pages (COPLAY_CHROMIUM)",
    )
    parser.add_argument("--json", type=Path, help="write the report here as JSON")
    load = parser.add_argument_group("load mode")
    load.add_argument("--load", type=int, metavar="ROOMS", help="load test: ROOMS two-player rooms at once")
    load.add_argument("--seconds", type=float, default=20.0, help="the measured window (default 20)")
    load.add_argument("--warmup", type=float, default=3.0, help="play before the window (default 3)")
    load.add_argument(
        "--bots", type=int, default=2, help="bot processes driving the participants (default 2)"
    )
    return parser.parse_args(argv)


async def pilot(args: argparse.Namespace, url: str, database: str | Path | None, token: str | None) -> dict:
    run_id = secrets.token_hex(3)
    files = tempfile.mkdtemp(prefix="coplay-pilot-files-")
    opts = Options(
        url=url,
        experiment=args.experiment,
        run_id=run_id,
        decline=args.decline,
        policy=args.policy,
        speed=args.speed,
        files_root=files,
        net={"delay_ms": args.net_delay} if args.net_delay else None,
    )
    started = time.monotonic()
    try:
        cfg = page_config(url, args.experiment)
        outcomes = await run_participants(
            opts,
            cfg,
            args.participants,
            args.concurrency,
            0.2 if args.arrive_every is None else args.arrive_every,
            min(args.browsers, args.participants),
        )
    finally:
        shutil.rmtree(files, ignore_errors=True)
    checks: list[dict[str, Any]] = []
    rooms: dict[str, str | None] = {}
    if database is not None:
        await browser_scenes(database, outcomes)
        rooms = await room_statuses(database, outcomes)
        checks = await check_data(database, args.experiment, outcomes)
        if token is not None:
            checks.append(await check_export(url, database, args.experiment, token, outcomes))
    else:
        rooms = {e["room"]: e.get("room_status") for o in outcomes for e in o.episodes if e.get("room")}
        checks.append(
            {"check": "data", "ok": True, "detail": "not checked: give --database (and --admin-token)"}
        )
    await close_engines()
    return build_report(args.experiment, outcomes, rooms, checks, time.monotonic() - started)


def load_test(args: argparse.Namespace, url: str, server: subprocess.Popen | None) -> int:
    """--load: the rooms played at once and measured (pilot/load.py), the server's CPU when it is ours."""
    work = Path(tempfile.mkdtemp(prefix="coplay-pilot-load-"))
    conf = {
        "speed": args.speed,
        "policy": args.policy,
        "net": {"delay_ms": args.net_delay} if args.net_delay else None,
        "arrive_every": 0.01 if args.arrive_every is None else args.arrive_every,
    }
    try:
        level = run_level(
            [url],
            args.load,
            args.experiment,
            work,
            bots=args.bots,
            warmup=args.warmup,
            seconds=args.seconds,
            server_pids=[server.pid] if server else (),
            conf=conf,
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
    level.pop("made")
    level["within_target"] = within_target(level)
    print(load_table(args.experiment, level))
    if args.json:
        args.json.write_text(
            json.dumps({"experiment": args.experiment, "url": url, **level}, indent=1) + "\n"
        )
    return 0 if level["within_target"] else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = None
    if args.url:
        url, database, token = args.url.rstrip("/"), args.database, args.admin_token
    else:
        work = Path(tempfile.mkdtemp(prefix="coplay-pilot-"))
        port, token = free_port(), secrets.token_urlsafe(24)
        database = work / "pilot.sqlite"
        try:
            server = launch(
                [
                    "--port",
                    str(port),
                    "--database",
                    str(database),
                    "--experiments-dir",
                    str(args.experiments_dir),
                ],
                work / "server.log",
                env={
                    "COPLAY_ADMIN_TOKEN": token,
                    "COPLAY_MAX_CONNECTIONS_PER_IP": "100000",
                    "COPLAY_MAX_ROOMS_PER_IP": "100000",
                },
                wait=60,
            )
        except ServerRefused as exc:  # e.g. a survey or env config the server refuses at startup
            check = {"check": "the server takes the experiment", "ok": False, "detail": exc.reason}
            return finish(args, build_report(args.experiment, [], {}, [check], 0.0))
        url = f"http://127.0.0.1:{port}"
        print(
            f"pilot: server of its own at {url}, database {database} (log {work / 'server.log'})",
            file=sys.stderr,
        )
    if args.load:
        return load_test(args, url, server)
    try:
        report = asyncio.run(pilot(args, url, database, token))
    finally:
        if server is not None:
            server.terminate()
            server.wait(15)
    return finish(args, report)


def finish(args: argparse.Namespace, report: dict[str, Any]) -> int:
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
