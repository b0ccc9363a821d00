"""The end-of-room replay in the real server (a worker process of its replay pool): an env
importing a wheel of its experiment's own pyscript.toml is replayed with that wheel and the
room completes; an env that needs a package only the browser has (a Pyodide build the
server's CPython cannot import) ends ``replay_error`` with the reason, never ``desync``,
named at startup, counted at /stats and on the admin counts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest

from server.admin.routes import study_counts
from server.multiplayer.replay import replay
from server.multiplayer.wheels import WheelCache
from server.study.experiment import load_experiments
from tests.integration.test_multiplayer_relay import clients, pair_up, room_row, send_inputs
from tests.servers import ROOT, RunningServer, start_server, write_experiment
from tests.wheels import build_wheel
from worker.env_host import forget_search_path

PLAYERS = ["p0", "p1"]
CONTROLS = {"ArrowLeft": "left", "ArrowRight": "right"}

# the wheel's function decides the state, so a replay without it (or with another) differs
ENV_WITH_WHEEL = '''
import tally


class Env:
    def reset(self, seed=None):
        self.score = seed % 97
        return self.score, {}

    def step(self, actions):
        for player in sorted(actions):
            self.score = tally.add(self.score, actions[player])
        return self.score, {"p0": 0, "p1": 0}, False, False, {}

    def render(self):
        return []


def create_env(config):
    return Env()
'''

# imports a package at frame 5 that only the browser installed: the clients' simulation
# (which has it) runs, the server's replay raises there
ENV_BROWSER_ONLY = '''
class Env:
    def reset(self, seed=None):
        self.frame = 0
        self.score = 0
        return 0, {}

    def step(self, actions):
        self.frame += 1
        if self.frame >= 5:
            import browseronly
            self.score += browseronly.BONUS
        return self.score, {"p0": 0, "p1": 0}, False, False, {}

    def render(self):
        return []


def create_env(config):
    return Env()
'''

TALLY = "def add(score, action):\n    return (score * 31 + len(action) * 7) % 1000003\n"
BROWSER_ONLY_WHEEL = "browseronly-1.0-cp312-cp312-pyodide_2024_0_wasm32.whl"


@pytest.fixture(scope="module")
def pkg_server(tmp_path_factory) -> RunningServer:
    work = tmp_path_factory.mktemp("replay-packages")
    exps = work / "experiments"
    with_wheel = write_experiment(exps, "mp-wheel", env_source=ENV_WITH_WHEEL, players=PLAYERS,
                                  controls=CONTROLS)
    wheel = build_wheel(with_wheel / "wheels", "tally", "1.0", {"tally": TALLY})
    (with_wheel / "pyscript.toml").write_text(f'packages = ["./wheels/{wheel.name}"]\n')
    browser_only = write_experiment(exps, "mp-browser-only", env_source=ENV_BROWSER_ONLY, players=PLAYERS,
                                    controls=CONTROLS)
    built = build_wheel(browser_only / "wheels", "browseronly", "1.0", {"browseronly": "BONUS = 3\n"})
    built.rename(built.with_name(BROWSER_ONLY_WHEEL))  # as if built for Pyodide
    (browser_only / "pyscript.toml").write_text(f'packages = ["./wheels/{BROWSER_ONLY_WHEEL}"]\n')
    running = start_server(work, experiments_dir=exps)
    running.extra.update(experiments=exps, wheel=wheel, work=work)
    try:
        yield running
    finally:
        running.stop()


def client_hash(source: str, seed: int, inputs: dict, end_frame: int, folders: list[str]) -> str:
    """What a browser that installed the packages reports (the same replay, its own imports)."""
    try:
        return replay(source, {}, PLAYERS, seed, inputs, end_frame, "noop", search_path=folders)["hash"]
    finally:
        forget_search_path(folders)


async def play_room(server: RunningServer, experiment: str, source: str, folders: list[str],
                    frames: range) -> tuple[dict, dict, str]:
    """Two clients play ``frames`` and report the hash a browser would: (room_result, start, hash)."""
    async with clients(server, experiment, 2) as (c0, c1):
        start = await pair_up(c0, c1)
        await asyncio.gather(send_inputs(c0, frames, "left"), send_inputs(c1, frames, "right"))
        inputs: dict[str, dict[int, Any]] = {"p0": dict.fromkeys(frames, "left"),
                                             "p1": dict.fromkeys(frames, "right")}
        end = frames[-1]
        digest = client_hash(source, start["seed"], inputs, end, folders)
        final = {"frame": end + 1, "hash": digest, "final": True}
        for c in (c0, c1):
            assert await c.call("state_hash", final) == {"ok": True}
        result = (await c0.wait_for("room_result", timeout=30))[0]
        assert (await c1.wait_for("room_result", timeout=30))[0] == result
        return result, start, digest


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.mark.asyncio
async def test_a_wheel_of_the_experiments_own_pyscript_toml_is_replayed_and_served(pkg_server, tmp_path):
    wheel = pkg_server.extra["wheel"]
    folders = WheelCache(tmp_path / "browser").search_path([wheel])  # the browser's install
    result, start, digest = await play_room(pkg_server, "mp-wheel", ENV_WITH_WHEEL, folders, range(2, 31))
    assert result == {"status": "completed", "final_hashes": {"p0": digest, "p1": digest},
                      "replay_hash": digest, "end_frame": 30}
    row = room_row(pkg_server, start["room"])
    assert (row["status"], row["replay_hash"]) == ("completed", digest)

    # the page is told to install it from our origin, under the experiment's own prefix
    url = f"/pkgs/x/mp-wheel/wheels/{wheel.name}"
    status, page = fetch(pkg_server.url + "/x/mp-wheel")
    assert status == 200 and url.encode() in page
    assert fetch(pkg_server.url + url) == (200, wheel.read_bytes())
    assert fetch(pkg_server.url + f"/pkgs/x/mp-browser-only/wheels/{wheel.name}")[0] == 404
    assert fetch(pkg_server.url + "/pkgs/x/mp-wheel/experiment.py")[0] == 404
    assert fetch(pkg_server.url + f"/pkgs/wheels/{wheel.name}")[0] == 404  # not in the global list


@pytest.mark.asyncio
async def test_a_replay_that_cannot_run_is_a_replay_error_not_a_desync(pkg_server, tmp_path):
    assert BROWSER_ONLY_WHEEL in pkg_server.log() and "replay runs without it" in pkg_server.log()
    browser = tmp_path / "browser-site"
    browser.mkdir()
    (browser / "browseronly.py").write_text("BONUS = 3\n")  # what micropip installed in the worker
    result, start, digest = await play_room(pkg_server, "mp-browser-only", ENV_BROWSER_ONLY, [str(browser)],
                                            range(2, 13))
    message = "ModuleNotFoundError: No module named 'browseronly' (frame 4)"
    assert result == {"status": "replay_error", "final_hashes": {"p0": digest, "p1": digest},
                      "replay_hash": None, "replay_error": message, "end_frame": 12}
    row = room_row(pkg_server, start["room"])
    assert (row["status"], row["replay_hash"]) == ("replay_error", None)
    assert pkg_server.query("SELECT replay_error FROM rooms WHERE id=?", start["room"]) == [(message,)]

    status, body = fetch(pkg_server.url + "/stats")
    assert status == 200 and json.loads(body)["relay"]["replay_errors"] == 1
    experiments = load_experiments(pkg_server.extra["experiments"])
    counts = await study_counts(pkg_server.database, experiments)
    assert counts["mp-browser-only"]["rooms_replay_error"] == 1
    assert counts["mp-browser-only"]["rooms_desync"] == 0
    assert counts["mp-wheel"]["rooms_replay_error"] == 0


@pytest.mark.asyncio
async def test_browsers_that_disagree_stay_a_desync_even_when_the_replay_fails(pkg_server, tmp_path):
    async with clients(pkg_server, "mp-browser-only", 2) as (c0, c1):
        start = await pair_up(c0, c1)
        await asyncio.gather(send_inputs(c0, range(2, 9), "left"), send_inputs(c1, range(2, 9), "left"))
        await c0.call("state_hash", {"frame": 9, "hash": "00000000000000aa", "final": True})
        await c1.call("state_hash", {"frame": 9, "hash": "00000000000000bb", "final": True})
        result = (await c0.wait_for("room_result", timeout=30))[0]
    assert result["status"] == "desync" and "browseronly" in result["replay_error"]
    assert room_row(pkg_server, start["room"])["status"] == "desync"


def test_an_error_in_an_experiments_pyscript_toml_stops_startup_naming_it(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch")
    broken = write_experiment(exps, "broken")
    (broken / "pyscript.toml").write_text('packages = ["./wheels/nothere-1.0-py3-none-any.whl"]\n')
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "0",
                           "--experiments-dir", str(exps), "--database", str(tmp_path / "db.sqlite")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert str(broken / "pyscript.toml") in proc.stderr and "nothere-1.0-py3-none-any.whl" in proc.stderr
