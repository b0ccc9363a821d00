"""Parity of the AI seats' recorded actions with the policy re-run in CPython: an episode's
recorded inputs (every seat's, the AI's included) are replayed through the env, and at each
frame an AI decision was made from (the step's ``from``) the policy decides again, here with
onnxruntime (or the Python policy itself). An argmax ONNX policy and a Python policy give
the recorded actions exactly; a mismatch names the frame, the seat and both actions.

    python -m server.policies.parity EXPERIMENT [--database data/coplay.sqlite] [--episode ID]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from server.policies.config import partner_spec
from server.study.experiment import Experiment, ExperimentError, load_experiments
from server.study.games import GameSpec, env_search_path


@dataclass
class Parity:
    episode_id: str
    decisions: int = 0  # decisions re-made
    checked: int = 0  # steps whose AI actions were compared
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.mismatches


def check_episode(exp: Experiment, spec: GameSpec, episode_id: str, seed: Any,
                  steps: list[tuple[int, dict, dict]]) -> Parity:
    """``steps``: (frame, actions of every seat, metrics with ``partners``) in frame order."""
    from worker.env_host import EnvHost, forget_search_path
    from worker.policies import build_seats

    report = Parity(episode_id)
    partners = {seat: partner_spec(name, exp.policies[name], exp.directory)
                for seat, name in spec.partners.items()}
    folders = env_search_path(spec, exp.directory)
    host = EnvHost(ring_size=1)  # no partners: every seat plays what was recorded
    host.set_globals({"env_config": spec.env_config, "players": spec.players})
    try:
        host.load(spec.env_source, str(spec.env_path), search_path=folders)
        seats = build_seats(partners, str(exp.directory.resolve()), folders)
        obs, info = host.env.reset(seed=seed)
        seen = {0: (obs, info)}  # frame -> what the env showed after it
        for seat in seats.values():
            seat.policy.reset(seed)
        made: dict[str, dict[int, Any]] = {s: {} for s in seats}
        for frame, actions, metrics in steps:
            for name, seat in seats.items():
                record = (metrics.get("partners") or {}).get(name) or {}
                origin = record.get("from")
                if origin is None or origin not in seen:
                    continue
                for skipped in record.get("unplayed", []):  # made, then overtaken: re-made too
                    if skipped in seen and skipped not in made[name]:
                        seat.decide(skipped, *seen[skipped], spec.players)
                        made[name][skipped] = seat.action
                        report.decisions += 1
                if origin not in made[name]:  # decisions in the order the browser made them
                    seat.decide(origin, *seen[origin], spec.players)
                    made[name][origin] = seat.action
                    report.decisions += 1
                report.checked += 1
                if made[name][origin] != actions.get(name):
                    report.mismatches.append({"frame": frame, "seat": name, "from": origin,
                                              "recorded": actions.get(name), "policy": made[name][origin]})
            obs, _, _, _, info = host.env.step(actions)
            seen[frame] = (obs, info)
    finally:
        forget_search_path([*folders, str(exp.directory.resolve())])
    return report


EPISODES = text("SELECT id, seed, scene_id, participant_id FROM episodes WHERE experiment = :e "
                "ORDER BY started, id")
STEPS = text("SELECT frame, actions, metrics FROM steps WHERE episode_id = :ep ORDER BY frame")
CONDITION = text("SELECT condition FROM participants WHERE id = :pid AND experiment = :e")


async def check_database(database: str | Path, exp: Experiment, episode: str | None = None) -> list[Parity]:
    """Every episode of ``exp`` with AI seats (or the one named) in the server's database."""
    from server.data.storage import create_engine

    engine = create_engine(database, readonly=True)
    reports = []
    try:
        async with engine.connect() as conn:
            for episode_id, seed, scene_id, pid in (await conn.execute(EPISODES, {"e": exp.name})).all():
                if episode is not None and episode_id != episode:
                    continue
                condition = (await conn.execute(CONDITION, {"pid": pid, "e": exp.name})).scalar()
                spec = exp.games.get((condition, scene_id)) or exp.games.get((None, scene_id))
                if spec is None or not spec.partners:
                    continue
                rows = (await conn.execute(STEPS, {"ep": episode_id})).all()
                steps = [(f, json.loads(a), json.loads(m or "{}")) for f, a, m in rows]
                reports.append(check_episode(exp, spec, episode_id, seed, steps))
    finally:
        await engine.dispose()
    return reports


def main(argv: list[str] | None = None) -> int:
    from server.settings import ServerSettings

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment")
    parser.add_argument("--database", default=str(ServerSettings().database))
    parser.add_argument("--experiments-dir", type=Path, default=ServerSettings().experiments_dir)
    parser.add_argument("--episode")
    args = parser.parse_args(argv)
    try:
        exp = load_experiments(args.experiments_dir)[args.experiment]
    except (ExperimentError, KeyError) as exc:
        print(f"cannot load experiment {args.experiment!r}: {exc}", file=sys.stderr)
        return 2
    reports = asyncio.run(check_database(args.database, exp, args.episode))
    for r in reports:
        print(f"{r.episode_id}: {r.checked} AI actions, {r.decisions} decisions re-made, "
              f"{len(r.mismatches)} mismatches" + "".join(f"\n  {m}" for m in r.mismatches[:10]))
    if not reports:
        print("no episodes with AI seats", file=sys.stderr)
        return 1
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
