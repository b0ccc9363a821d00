"""Issue 13: what the live monitor costs the server. One Coplay process holds 100 two-player
rooms at 30 inputs/s per seat (the scale benchmark's bots, bench/load.py); its CPU is measured
over the same window length with nobody watching and with a signed-in admin's monitor
socket receiving the picture every second, interleaved (A B A B) so drift hits both alike.
The relay's p99 is reported beside each, and how many pictures the watcher received.

Beside each p99, what became of the inputs sent in the window (``delivery``: sent, arrived,
refused, lost). Each seat sends 30 inputs/s, within the server's rate limit. bench/load.py
counts the bots' server_error events over the whole run (any event), not per window: that
count stands as "refused", so it is an upper bound of the window's refused inputs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import socketio

from bench import load
from bench.common import delivery
from server.admin.password import hash_password
from tests.servers import ROOT, start_server

PASSWORD = "bench monitor password"


def admin_ticket(url: str) -> str:
    """Sign in like a researcher and read the monitor page's ticket."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(url + "/admin/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": csrf, "password": PASSWORD}).encode()
    opener.open(url + "/admin/login", data=form, timeout=30).read()
    monitor = opener.open(url + "/admin/monitor", timeout=30).read().decode()
    config = re.search(r'id="monitor-config">(.*?)</script>', monitor, re.S).group(1)
    return json.loads(config)["ticket"]


async def _watch(url: str, ticket: str) -> None:
    pictures = 0

    def got(_picture) -> None:
        nonlocal pictures
        pictures += 1

    client = socketio.AsyncClient(reconnection=False)
    client.on("picture", got, namespace="/admin")
    await client.connect(url, namespaces=["/admin"], auth={"ticket": ticket}, transports=["websocket"])
    await asyncio.to_thread(sys.stdin.readline)  # until told to stop
    await client.disconnect()
    print(json.dumps({"pictures": pictures}), flush=True)


def watcher_main() -> None:
    """``python -m bench.monitor --watch URL TICKET``: a monitor socket in a process of its own."""
    asyncio.run(_watch(sys.argv[2], sys.argv[3]))


class Watcher:
    def __init__(self, url: str, ticket: str):
        self.process = subprocess.Popen([sys.executable, "-m", "bench.monitor", "--watch", url, ticket],
                                        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop(self) -> int:
        out, _ = self.process.communicate("\n", timeout=30)
        return json.loads(out.strip().splitlines()[-1])["pictures"]


def _delivery(level: dict) -> dict:
    """A load level's inputs in its window: sent, arrived, refused (its server_errors), lost."""
    arrived = (level["relay_one_way_ms"] or {}).get("n", 0)
    return delivery(arrived + level["relay_lost_messages"], arrived, level["server_errors"])


def run(rooms: int = 100, seconds: float = 15.0, warmup: float = 3.0, trials: int = 3) -> dict:
    work = Path(tempfile.mkdtemp(prefix="coplay-bench-monitor-"))
    names = load._experiments(work / "experiments", 2)
    env = {**load.LIFTED_CAPS, "COPLAY_ADMIN_PASSWORD_HASH": hash_password(PASSWORD, n=2 ** 12)}
    server = start_server(work, experiments_dir=work / "experiments", env=env)
    sides: dict[str, list[dict]] = {"nobody_watching": [], "admin_watching": []}
    try:
        ticket = admin_ticket(server.url)
        for trial in range(trials):
            for side in sides:
                watcher = Watcher(server.url, ticket) if side == "admin_watching" else None
                started = time.monotonic()
                try:
                    level, _ = load._level([server.url], [server.process.pid], rooms, names,
                                           f"m{trial}{side[0]}", warmup, seconds, work)
                finally:
                    pictures = watcher.stop() if watcher else 0
                level["pictures"] = pictures
                level["pictures_per_s"] = round(pictures / (time.monotonic() - started), 2)
                sides[side].append(level)
                print(f"monitor: {side} trial {trial}: cpu {level['server_cpu_percent']} %, "
                      f"p99 {level['relay_one_way_ms']['p99']} ms, pictures {pictures}",
                      file=sys.stderr, flush=True)
    finally:
        server.stop()
    out: dict = {"rooms": rooms, "seconds": seconds, "trials": trials}
    for side, levels in sides.items():
        cpu = [lv["server_cpu_percent"] for lv in levels]
        out[side] = {"server_cpu_percent": cpu, "mean_cpu_percent": round(sum(cpu) / len(cpu), 1),
                     "relay_p99_ms": [lv["relay_one_way_ms"]["p99"] for lv in levels],
                     "lost_messages": [lv["relay_lost_messages"] for lv in levels],
                     "delivery": [_delivery(lv) for lv in levels],
                     "pictures_per_s": [lv["pictures_per_s"] for lv in levels]}
    out["monitor_cpu_percent"] = round(out["admin_watching"]["mean_cpu_percent"]
                                       - out["nobody_watching"]["mean_cpu_percent"], 1)
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["--watch"]:
        watcher_main()
    else:
        print(json.dumps(run(), indent=1))
