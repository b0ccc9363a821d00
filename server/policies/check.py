"""Startup checks of the AI partners, in CPython, where CPython can check them: the policy
file exists and defines create_policy; the policy, created as the browser creates it,
answers the env's first observation without raising. Every error names the policy, the
scene and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.policies.config import PythonPolicy, partner_spec
from server.study.games import GameSpec, GameSpecError, env_search_path


def check_partners_run(spec: GameSpec, policies: dict[str, Any], directory: Path) -> None:
    from worker.env_host import EnvHost, forget_search_path
    from worker.policies import build_seats

    if not spec.partners:
        return
    for name in sorted(set(spec.partners.values())):
        policy = policies[name]
        if isinstance(policy, PythonPolicy):
            path = policy.python if policy.python.is_absolute() else directory / policy.python
            if not path.resolve().is_relative_to(directory.resolve()):
                raise GameSpecError(f"policy {name!r}: {policy.python} is outside the experiment folder "
                                    "(only that folder is sent to the browser)")
            if not path.is_file():
                raise GameSpecError(f"policy {name!r}: file {policy.python} not found ({path})")
            try:
                compile(path.read_text(), str(path), "exec")
            except SyntaxError as exc:
                raise GameSpecError(f"policy {name!r}: {path}: line {exc.lineno}: {exc.msg}") from None
    partners = {seat: partner_spec(name, policies[name], directory) for seat, name in spec.partners.items()}
    folders = env_search_path(spec, directory)
    policy_folders = [str((directory / p["file"]).parent.resolve()) for p in partners.values() if "file" in p]
    host = EnvHost(ring_size=1)
    host.set_globals({"env_config": spec.env_config, "players": spec.players})
    try:
        try:
            host.load(spec.env_source, str(spec.env_path), search_path=folders)
            host.reset(seed=0, render=False)
        except Exception:  # noqa: BLE001 - an env CPython cannot run: the page reports it
            host = None
        try:
            seats = build_seats(partners, str(directory.resolve()), folders)
            if host is not None:
                host.set_partners(seats)
                host.reset(seed=0, render=False)  # each policy answers the first observation
        except Exception as exc:
            raise GameSpecError(f"scene {spec.scene_id!r}: partners: {type(exc).__name__}: {exc}") from None
    finally:
        forget_search_path([*folders, *policy_folders, str(directory.resolve())])
