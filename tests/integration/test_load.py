"""The load benchmark's driver (bench/load.py on pilot/load.py), briefly: rooms of the pilot's
simulated participants on 1 process (with and without Redis) and on 2 processes + Redis end
``completed`` with no input lost or refused and every input stored; the capacity trials
interleave the setups and compare their medians; the bare input bots still drive the bare relay
baseline and Coplay beside it; the pilot's load mode (--load, --url) measures a running
server, pairing its participants as it placed them."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys

from bench import load
from tests.servers import ROOT, start_server


def test_the_load_driver_completes_every_room_losing_nothing_on_1_and_2_processes():
    results = load.run(rooms=(2,), seconds=3.0, warmup=1.0, bots=1, processes=("1", "1r", "2"))
    for count in ("1", "1r", "2"):
        level = results["processes"][count]["2"]
        assert level["room_results"] == {"completed": 2}, level
        assert level["rooms_completed"] == 2 and level["rooms_ready"] == 2
        assert level["participants"] == {"finished": 4}, level
        # 2 rooms x 2 seats x 30 inputs/s over the 3 s window, each arrived at the partner
        assert level["inputs_sent"] >= 0.9 * 2 * 2 * 30 * 3, level
        assert level["inputs_relayed"] == level["inputs_sent"] == level["relay_one_way_ms"]["n"]
        assert level["inputs_refused"] == 0 and level["inputs_lost"] == 0, level
        assert level["inputs_stored"] == level["inputs_made"] > 0 and level["lost_records"] == 0, level
        assert level["server_errors"] == 0 and level["rooms_ended_in_window"] == 0, level
        processes, with_redis = load.setup_processes(count)
        assert len(level["server_cpu_ms_per_input_by_process"]) == processes
        assert level["processes"] == processes and level["redis"] == with_redis
        assert ("redis" in level.get("other_cpu_percent", {})) == with_redis
        assert results["setups"][count]["projected_rooms_per_core"] > 0
    assert results["setups"]["1"]["capacity_vs_one_process"] == 1.0
    # bare input bots: the bare relay ends its rooms, Coplay stores every input (rooms end desync:
    # the bots simulate nothing)
    assert results["baseline"]["2"]["room_results"] == {"completed": 2}
    bare = results["coplay_bare_bots"]["2"]
    assert bare["room_results"] == {"desync": 2} and bare["lost_records"] == 0 and bare["inputs_lost"] == 0
    # the README table renders the run
    from bench.report import _scale_lines

    table = "\n".join(_scale_lines(results))
    assert "| Coplay, 2 processes + Redis | 2 |" in table and "rooms per fully used core" in table
    assert "| Coplay, 1 process + Redis | 2 |" in table


def test_the_capacity_trials_interleave_the_setups_and_compare_medians():
    cap = load.capacity(rooms=2, trials=2, setups=("1", "2"), seconds=2.0, warmup=1.0, bots=1)
    assert cap["all_within_target"], cap
    for name, processes in (("1", 1), ("2", 2)):
        runs = cap["runs"][name]
        assert len(runs) == 2 and all(r["rooms_completed"] == 2 and r["inputs_lost"] == 0 for r in runs), runs
        assert all(len(r["server_cpu_ms_per_input_by_process"]) == processes for r in runs)
        figures = [r["server_cpu_ms_per_input"] for r in runs]
        assert cap["median_cpu_ms_per_input"][name] == statistics.median(figures)
    assert cap["capacity_vs_one_process"]["1"] == 1.0
    assert cap["capacity_vs_one_process"]["2"] == round(
        cap["median_cpu_ms_per_input"]["1"] / cap["median_cpu_ms_per_input"]["2"], 3)
    from bench.report import _capacity_lines

    assert "| Coplay, 2 processes + Redis |" in "\n".join(_capacity_lines(cap))


def test_the_pilot_load_tests_a_running_server(tmp_path):
    exps = tmp_path / "experiments"
    load._load_experiment(exps, 1.0, 2.0)
    env = {"COPLAY_MAX_CONNECTIONS_PER_IP": "1000", "COPLAY_MAX_ROOMS_PER_IP": "1000"}
    server = start_server(tmp_path, experiments_dir=exps, env=env)
    out = tmp_path / "load.json"
    try:
        proc = subprocess.run([sys.executable, "-m", "pilot", "load", "--url", server.url, "--load", "3",
                               "--seconds", "2", "--warmup", "1", "--bots", "1", "--json", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    report = json.loads(out.read_text())
    assert report["room_results"] == {"completed": 3}, proc.stdout + proc.stderr
    assert report["inputs_lost"] == 0 and report["inputs_refused"] == 0
    assert report["inputs_relayed"] == report["inputs_sent"] > 0
    assert "server_cpu_percent" not in report  # the server is not the pilot's: its CPU is not measured
    assert "inputs: sent" in proc.stdout and "rooms: completed 3" in proc.stdout
    # each room holds the two participants the driver placed together (indices 2k and 2k+1)
    for (players,) in server.query("SELECT players FROM rooms"):
        seats = sorted(int(re.search(r"-(\d+)$", pid).group(1)) for pid in json.loads(players).values())
        assert seats[0] % 2 == 0 and seats[1] == seats[0] + 1, players
