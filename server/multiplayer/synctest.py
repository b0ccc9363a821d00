"""Check an experiment's env for determinism in CPython:

    python -m server.multiplayer.synctest experiments/kitchen [--frames 600] [--distance 8] [--seed 1]
        [--pyscript-toml pyscript.toml] [--vendor-dir vendor]

Plays random inputs, rolling back `distance` frames every frame and replaying; exits 1
and names the first diverging frame if a replay differs. The env imports what the browser
installs: the pure-Python wheels of the server's and the experiment's pyscript.toml,
unpacked into a temporary folder, as for the server's replay. (Open the experiment with
``?synctest=8`` to run the same check in the browser's Pyodide.)"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

from pages.synctest import SyncTest
from server.multiplayer.wheels import WheelCache, unusable
from server.settings import ROOT
from server.study.experiment import ExperimentError, load_experiment
from server.study.games import env_search_path
from server.study.packages import PackageConfigError, PackageSource
from worker.env_host import EnvHost, forget_search_path


def run_synctest(env_source: str, env_config: dict, players: list[str], actions: list, frames: int = 300,
                 distance: int = 8, seed: int = 1, filename: str = "env.py",
                 search_path: list[str] | None = None) -> dict:
    host = EnvHost(ring_size=distance + 4)
    host.set_globals({"env_config": env_config, "players": players})
    try:
        host.load(env_source, filename, search_path=search_path or [])
        host.reset(seed=seed, render=False)
        test = SyncTest(distance)
        rng = random.Random(seed)
        ops = test.start_ops()
        test.check(ops, host.run_batch(ops))
        for _ in range(frames):
            ops = test.ops_for({p: rng.choice(actions) for p in players})
            if test.check(ops, host.run_batch(ops)) is not None:
                break
    finally:  # the next scene's env (or the caller) must not see this one's modules
        forget_search_path(search_path or [])
    return test.report()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, help="experiment folder (with experiment.py)")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--distance", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pyscript-toml", type=Path, default=ROOT / "pyscript.toml",
                        help="the server's package list (the experiment's own is added)")
    parser.add_argument("--vendor-dir", type=Path, default=ROOT / "vendor")
    args = parser.parse_args(argv)
    try:
        exp = load_experiment(args.experiment / "experiment.py")
        wheels = list(PackageSource(args.pyscript_toml, args.vendor_dir).for_experiment(exp).wheels.values())
    except (ExperimentError, PackageConfigError) as exc:
        print(exc, file=sys.stderr)
        return 2
    for reason in unusable(wheels):
        print(f"warning: {reason}; the check runs without it", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="coplay-synctest-") as cache:
        return _check(exp, args, WheelCache(Path(cache)).search_path(wheels))


def _check(exp, args: argparse.Namespace, wheel_folders: list[str]) -> int:
    ok = True
    for game in exp.games_for(None):  # every game scene of the study, each with its own env
        actions = sorted({json.dumps(a) for a in [*game.controls.values(), game.default_action]})
        report = run_synctest(game.env_source, game.env_config, game.players,
                              [json.loads(a) for a in actions], args.frames, args.distance, args.seed,
                              str(game.env_path),
                              env_search_path(game, exp.directory) + wheel_folders)
        print(json.dumps({"scene": game.scene_id, **report}, indent=2))
        ok = ok and report["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
