"""Check an experiment's env for determinism in CPython:

    python -m server.multiplayer.synctest experiments/kitchen [--frames 600] [--distance 8] [--seed 1]

Plays random inputs, rolling back `distance` frames every frame and replaying; exits 1
and names the first diverging frame if a replay differs. (Open the experiment with
``?synctest=8`` to run the same check in the browser's Pyodide.)"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from pages.synctest import SyncTest
from server.study.experiment import ExperimentError, load_experiment
from server.study.games import env_search_path
from worker.env_host import EnvHost


def run_synctest(env_source: str, env_config: dict, players: list[str], actions: list, frames: int = 300,
                 distance: int = 8, seed: int = 1, filename: str = "env.py",
                 search_path: list[str] | None = None) -> dict:
    host = EnvHost(ring_size=distance + 4)
    host.set_globals({"env_config": env_config, "players": players})
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
    return test.report()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", type=Path, help="experiment folder (with experiment.py)")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--distance", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        exp = load_experiment(args.experiment / "experiment.py")
    except ExperimentError as exc:
        print(exc, file=sys.stderr)
        return 2
    ok = True
    for game in exp.games_for(None):  # every game scene of the study, each with its own env
        actions = sorted({json.dumps(a) for a in [*game.controls.values(), game.default_action]})
        report = run_synctest(game.env_source, game.env_config, game.players,
                              [json.loads(a) for a in actions], args.frames, args.distance, args.seed,
                              str(game.env_path),
                              env_search_path(game, exp.directory))
        print(json.dumps({"scene": game.scene_id, **report}, indent=2))
        ok = ok and report["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
