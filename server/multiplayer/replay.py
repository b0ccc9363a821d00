"""Server-side replay: re-run a finished episode in CPython from its seed and the
recorded inputs, with the same env code the browsers ran. Its final state hash is the
record of truth; the browsers' hashes must equal it."""

from __future__ import annotations

from typing import Any

from worker.env_host import EnvHost, forget_search_path


def replay(env_source: str, env_config: dict, players: list[str], seed: int,
           inputs: dict[str, dict[int, Any]], end_frame: int, default_action: Any,
           filename: str = "env.py", search_path: list[str] | None = None, trajectory: bool = False) -> dict:
    """Step frames 0..end_frame; a frame without a recorded input uses the default (the
    input-delay frames at the start). Returns the final hash (of the state after
    end_frame, which is snapshot end_frame + 1 on the clients)."""
    host = EnvHost(ring_size=1)
    host.set_globals({"env_config": env_config, "players": players})
    try:
        host.load(env_source, filename, search_path=search_path or [])
        return _run(host, players, seed, inputs, end_frame, default_action, trajectory)
    finally:  # the next replay (another env, or this one edited) imports afresh
        forget_search_path(search_path or [])


def _run(host: EnvHost, players: list[str], seed: int, inputs: dict[str, dict[int, Any]], end_frame: int,
         default_action: Any, trajectory: bool) -> dict:
    host.reset(seed=seed, render=False)
    steps = []
    for frame in range(end_frame + 1):
        actions = {p: inputs.get(p, {}).get(frame, default_action) for p in players}
        result = host.step(actions, render=False)
        if trajectory:
            steps.append({"frame": frame, "actions": actions, "rewards": result["rewards"],
                          "done": result["done"], "info": result["info"]})
    out = {"end_frame": end_frame, "hash": host.hash()["hash"]}
    if trajectory:
        out["trajectory"] = steps
    return out
