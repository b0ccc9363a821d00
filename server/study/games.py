"""Game scenes with every setting resolved. A `game` scene may set its own env, players,
episodes, frame rate, controls, … ; whatever it leaves out comes from the experiment's
top-level keys, and a condition may override any of them for one scene. The result, one
GameSpec per (condition, scene), is what the page plays, the relay matches on and the
server replays."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from server.study.scenes import Game

# Scene keys that fall back to the experiment's top-level key of the same name.
INHERITED = ("env", "env_config", "players", "max_steps", "fps", "controls", "default_action",
             "start_key", "auto_start", "instructions", "multiplayer", "partners")

# Files of an experiment folder the browser never gets: the definition itself (it may hold
# completion codes), the package list, wheels (installed by micropip), caches, dotfiles.
PRIVATE_NAMES = {"experiment.py", "pyscript.toml", "__pycache__"}
PRIVATE_SUFFIXES = (".whl", ".pyc")
MAX_ENV_FILES_BYTES = 32 * 1024 * 1024


class GameSpecError(ValueError):
    """A game scene cannot be resolved; the message names the scene and the field."""


class EnvFile(BaseModel):
    """One file of the env's folder, copied into the worker's file system."""

    path: str  # relative to the experiment folder, '/'-separated
    sha256: str
    size: int


class GameSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    scene_id: str
    env: Path  # as written, relative to the experiment folder
    env_path: Path  # absolute
    env_source: str
    env_config: dict[str, Any]
    players: list[str]
    episodes: int
    max_steps: int
    time_limit: float | None
    fps: int
    controls: dict[str, Any]
    default_action: Any
    start_key: str
    auto_start: bool
    instructions: str
    multiplayer: Any  # server.study.experiment.Multiplayer
    between_episodes: str
    auto_advance: float | None
    rematch: bool
    partners: dict[str, str]  # seat -> policy name: AI seats

    @property
    def humans(self) -> list[str]:
        """The seats people play (the first is this browser's keyboard in a single-browser game)."""
        return [p for p in self.players if p not in self.partners]

    def seated(self) -> dict[str, str]:
        """Seat -> policy for the AI seats (the stand-in policy is not seated until needed)."""
        return dict(self.partners)

    def policies_used(self) -> set[str]:
        """Every policy this game may run: its AI seats', and its dropout stand-in's."""
        stand_in = self.multiplayer.stand_in if self.is_multiplayer else None
        return set(self.partners.values()) | ({stand_in} if stand_in else set())

    @property
    def is_multiplayer(self) -> bool:
        """More than one person: a room of browsers, matched by the server."""
        return len(self.humans) > 1

    @property
    def env_rel(self) -> str:
        """The env file relative to its experiment folder, as the worker lays it out (an env
        kept outside the folder is placed at its top: only that one file goes along)."""
        return self.env.name if self.env.is_absolute() else self.env.as_posix()


def check_partners(scene_id: str, partners: dict[str, str], players: list[str], policies: dict) -> None:
    for seat, name in sorted(partners.items()):
        if seat not in players:
            raise GameSpecError(f"scene {scene_id!r}: partners: seat {seat!r} is not one of the players "
                                f"{players}")
        if name not in policies:
            raise GameSpecError(f"scene {scene_id!r}: partners: {seat}: no policy {name!r} "
                                f"(defined: {', '.join(sorted(policies)) or 'none'})")
    humans = [p for p in players if p not in partners]
    if not humans:
        raise GameSpecError(f"scene {scene_id!r}: partners: every seat is an AI partner; "
                            "leave at least one for the participant")



def check_stand_in(scene_id: str, multiplayer: Any, policies: dict) -> None:
    name = multiplayer.stand_in
    if name is None:
        return
    if name not in policies:
        raise GameSpecError(f"scene {scene_id!r}: multiplayer.stand_in: no policy {name!r} "
                            f"(defined: {', '.join(sorted(policies)) or 'none'})")
    if multiplayer.dropout != "stand_in":
        raise GameSpecError(f"scene {scene_id!r}: multiplayer.stand_in names a policy but dropout is "
                            f"{multiplayer.dropout!r}; set dropout to \"stand_in\"")


def experiment_files(directory: Path, server_only: list[str] | tuple[str, ...] = ()) -> list[EnvFile]:
    """Every file of the experiment folder an env may import or open, with its hash; not the
    files matching a ``server_only`` pattern."""
    found = []
    total = 0
    base = directory.resolve()
    # a Pyodide release's packages kept here (pyodide_packages_dir) are served as packages
    releases = [p.parent for p in base.rglob("pyodide-lock.json")]
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if any(part.startswith(".") or part in PRIVATE_NAMES for part in rel.parts):
            continue
        if any(path.is_relative_to(release) for release in releases):
            continue
        if not path.is_file() or path.suffix in PRIVATE_SUFFIXES or rel.parts[0] == "assets":
            continue
        if any(rel.match(pattern) or rel.as_posix() == pattern for pattern in server_only):
            continue
        data = path.read_bytes()
        total += len(data)
        found.append(EnvFile(path=rel.as_posix(), sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    if total > MAX_ENV_FILES_BYTES:
        raise GameSpecError(f"{directory}: the env's files add up to {total // 1_000_000} MB "
                            f"(at most {MAX_ENV_FILES_BYTES // 1_000_000} MB are copied to the browser); "
                            "move large files out of the experiment folder or into assets/")
    return found


def _merged_fields(scene: Game, override: dict[str, Any] | None) -> dict[str, Any]:
    """The scene's own fields with a condition's override on top (env_config merged)."""
    fields = scene.model_dump(exclude_unset=True)
    if not override:
        return fields
    merged = {**fields, **override}
    if "env_config" in override and "env_config" in fields:
        merged["env_config"] = {**fields["env_config"], **override["env_config"]}
    return merged


def resolve_game(exp: Any, scene: Game, condition: Any | None) -> GameSpec:
    """One game scene under one condition (or none), every field filled in."""
    from server.study.experiment import Multiplayer

    override = condition.overrides.get(scene.id) if condition is not None else None
    try:
        own = Game.model_validate(_merged_fields(scene, override)) if override else scene
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise GameSpecError(f"condition {condition.name!r} overrides scene {scene.id!r}: {problems}") \
            from None
    given = own.model_fields_set
    values: dict[str, Any] = {}
    for key in INHERITED:
        values[key] = getattr(own, key) if key in given else getattr(exp, key)
    for key in ("env", "controls"):
        if not values[key]:
            raise GameSpecError(f"EXPERIMENT.{key}: Field required (at the top level, or in every game "
                                f"scene: scene {scene.id!r} has none)")
    if "env_config" not in given:
        values["env_config"] = dict(exp.env_config)
    if condition is not None:  # a condition's env_config applies to every game it plays
        values["env_config"] = {**values["env_config"], **condition.env_config}
    if "multiplayer" in given:  # the scene's multiplayer keys refine the experiment's
        try:
            values["multiplayer"] = Multiplayer.model_validate(
                {**exp.multiplayer.model_dump(), **own.multiplayer})
        except ValidationError as exc:
            problems = "; ".join(f"multiplayer.{'.'.join(map(str, e['loc']))}: "
                                 f"{e['msg'].removeprefix('Value error, ')}"
                                 for e in exc.errors())
            raise GameSpecError(f"scene {scene.id!r}: {problems}") from None
    players = values["players"]
    if len(set(players)) != len(players):
        raise GameSpecError(f"scene {scene.id!r}: players: player ids must be unique")
    if not values["auto_start"] and values["start_key"] in values["controls"]:
        raise GameSpecError(f"scene {scene.id!r}: start_key {values['start_key']!r} is also a game control")
    check_partners(scene.id, values["partners"], players, exp.policies)
    check_stand_in(scene.id, values["multiplayer"], exp.policies)
    env = Path(values["env"])
    env_path = env if env.is_absolute() else exp.directory / env
    return GameSpec(scene_id=scene.id, env_path=env_path, env_source="", episodes=own.episodes,
                    time_limit=own.time_limit, between_episodes=own.between_episodes,
                    auto_advance=own.auto_advance, rematch=own.rematch, **values)


def env_search_path(spec: GameSpec, directory: Path) -> list[str]:
    """Where the env's own imports come from: its folder, then the experiment folder (the
    same layout the worker builds in the browser)."""
    folders = [str(spec.env_path.parent.resolve())]
    if directory.resolve() != spec.env_path.parent.resolve():
        folders.append(str(directory.resolve()))
    return folders


def check_players(spec: GameSpec, directory: Path) -> None:
    """Create the scene's env in CPython and compare the players it declares (PettingZoo's
    ``possible_agents``, or a ``players`` attribute) with the scene's. An env that cannot be
    created here (a browser-only import, a bug) is left to the page, which shows its error."""
    from worker.env_host import EnvHost, forget_search_path
    from worker.errors import PlayersMismatch

    host = EnvHost(ring_size=1)
    host.set_globals({"env_config": spec.env_config, "players": spec.players})
    folders = env_search_path(spec, directory)
    try:
        host.load(spec.env_source, str(spec.env_path), search_path=folders)
    except PlayersMismatch as exc:  # a Gymnasium or PettingZoo env (worker/adapters.py)
        raise GameSpecError(f"scene {spec.scene_id!r}: players: {exc}") from None
    except Exception:  # noqa: BLE001 - the page shows the env's own error, with its traceback
        return
    finally:  # the server's own imports must never see the researcher's modules
        forget_search_path(folders)
    declared = getattr(host.env, "possible_agents", None) or getattr(host.env, "players", None)
    if not isinstance(declared, (list, tuple)) or not all(isinstance(p, str) for p in declared):
        return
    if len(declared) != len(spec.players):
        raise GameSpecError(f"scene {spec.scene_id!r}: players: the scene has {len(spec.players)} "
                            f"({', '.join(spec.players)}) but env {spec.env_rel!r} declares {len(declared)} "
                            f"({', '.join(declared)})")


def client_game(spec: GameSpec, files: list[EnvFile], file_base: str, packages: list[dict],
                partners: dict[str, dict] | None = None) -> dict:
    """What the page needs to prepare and play one game scene."""
    return {
        "scene_id": spec.scene_id,
        "env_source": spec.env_source,
        "env_filename": spec.env_rel,
        # the worker copies these into its file system before running the env, so the env
        # may import its sibling modules and open its data files as in CPython
        "env_files": [{"path": f.path, "url": f"{file_base}{f.path}?v={f.sha256[:16]}"} for f in files],
        "env_config": spec.env_config,
        "packages": packages,
        "players": spec.players,
        "episodes": spec.episodes,
        "max_steps": spec.max_steps,
        "time_limit": spec.time_limit,
        "fps": spec.fps,
        "controls": spec.controls,
        "default_action": spec.default_action,
        "start_key": spec.start_key,
        "auto_start": spec.auto_start,
        "instructions": spec.instructions,
        "between_episodes": spec.between_episodes,
        "auto_advance": spec.auto_advance,
        "multiplayer": spec.multiplayer.model_dump(exclude={"network"}) if spec.is_multiplayer else None,
        "humans": spec.humans,
        "partners": partners,
    }


def games_config(exp: Any, condition: str | None, packages: Any) -> dict[str, dict]:
    """Every game scene of the condition's path, as the page prepares and plays it."""
    base = f"/x/{exp.name}/files/"
    from server.policies.config import partner_spec

    out = {}
    for g in exp.games_for(condition):
        out[g.scene_id] = game = client_game(g, exp.env_files, base, packages.entries,
                                             {seat: partner_spec(name, exp.policies[name], exp.directory)
                                              for seat, name in g.seated().items()})
        # a room's AI seats are hosted by one of its browsers (and by another if it leaves); a
        # dropped person's seat may be taken by the stand-in policy, hosted the same way
        name = g.multiplayer.stand_in if g.is_multiplayer else None
        game["stand_in"] = partner_spec(name, exp.policies[name], exp.directory) if name else None
    return out
