"""Server-side replay: re-run a finished episode in CPython from its seed and the
recorded inputs, with the same env code the browsers ran. Its final state hash is the
record of truth; the browsers' hashes must equal it.

``run_job`` is what a replay worker process runs (server/multiplayer/replay_pool.py): the
env's folders and the browser's unpacked wheels go on sys.path for that one replay and
come off again afterwards, so one room's modules never leak into the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.env_host import EnvHost, forget_search_path


class ReplayFailed(Exception):
    """The replay could not run to the end (the env raised, an import is missing, the
    worker died). Not a desync: nothing was compared."""


def replay(env_source: str, env_config: dict, players: list[str], seed: int,
           inputs: dict[str, dict[int, Any]], end_frame: int, default_action: Any,
           filename: str = "env.py", search_path: list[str] | None = None, trajectory: bool = False) -> dict:
    """Step frames 0..end_frame; a frame without a recorded input uses the default (the
    input-delay frames at the start). Returns the final hash (of the state after
    end_frame, which is snapshot end_frame + 1 on the clients). An env that raises is
    reported as ReplayFailed naming the stage (load, reset or the frame)."""
    host = EnvHost(ring_size=1)
    host.set_globals({"env_config": env_config, "players": players})
    stage = "loading the env"
    try:
        host.load(env_source, filename, search_path=search_path or [])
        stage = "reset"
        host.reset(seed=seed, render=False)
        steps = []
        for frame in range(end_frame + 1):
            stage = f"frame {frame}"
            actions = {p: inputs.get(p, {}).get(frame, default_action) for p in players}
            result = host.step(actions, render=False)
            if trajectory:
                steps.append({"frame": frame, "actions": actions, "rewards": result["rewards"],
                              "done": result["done"], "info": result["info"]})
        stage = "hashing the final state"
        out = {"end_frame": end_frame, "hash": host.hash()["hash"]}
    except Exception as exc:  # noqa: BLE001 - whatever the env raises is the message
        raise ReplayFailed(f"{type(exc).__name__}: {exc} ({stage})") from exc
    finally:  # the next replay (another env, or this one edited) imports afresh
        forget_search_path(search_path or [])
    if trajectory:
        out["trajectory"] = steps
    return out


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One replay, as a worker process runs it: {"hash", "end_frame"} or {"error"}. The
    error comes back as text: an env's own exception class may not unpickle here."""
    from server.multiplayer.wheels import WheelCache

    folders = list(job.get("search_path") or [])
    try:
        if job.get("wheels"):
            folders += WheelCache(Path(job["cache_dir"])).search_path(Path(w) for w in job["wheels"])
        return replay(job["env_source"], job["env_config"], job["players"], job["seed"], job["inputs"],
                      job["end_frame"], job["default_action"], job.get("filename", "env.py"), folders)
    except ReplayFailed as exc:
        return {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable wheel
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        forget_search_path(folders)
