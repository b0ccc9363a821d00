"""Startup checks of the AI partners, in CPython, where CPython can check them: the policy's
files exist inside the experiment folder and compile; an ONNX model loads in onnxruntime and
has the inputs and outputs the policy names (their shapes are resolved here for the browser);
each policy, created as the browser creates it, answers the env's first observation without
raising (for a model: the obs function's output fits the input, the scores fit the actions).
Every error names the policy, the scene and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server.policies.config import OnnxPolicy, Policy, PythonPolicy, partner_spec, policy_path
from server.study.games import GameSpec, GameSpecError, env_search_path


def _inside(name: str, rel: Path, directory: Path, what: str) -> Path:
    path = policy_path(rel, directory)
    if not path.resolve().is_relative_to(directory.resolve()):
        raise GameSpecError(f"policy {name!r}: {what} {rel} is outside the experiment folder "
                            "(only that folder is sent to the browser)")
    if not path.is_file():
        raise GameSpecError(f"policy {name!r}: {what} {rel} not found ({path})")
    return path


def _compiles(name: str, path: Path) -> None:
    try:
        compile(path.read_text(), str(path), "exec")
    except SyntaxError as exc:
        raise GameSpecError(f"policy {name!r}: {path}: line {exc.lineno}: {exc.msg}") from None


def _static(shape: list[Any]) -> list[int]:
    # a symbolic dimension (a batch axis, usually) is one decision: 1
    return [d if isinstance(d, int) and d > 0 else 1 for d in shape]


def resolve_onnx(name: str, policy: OnnxPolicy, path: Path) -> dict[str, Any]:
    """The model's names and shapes, read by onnxruntime; errors say what the model has."""
    try:
        import onnxruntime
    except ImportError:
        raise GameSpecError(f"policy {name!r}: checking an ONNX policy needs onnxruntime on the server "
                            "(pip install -r requirements.txt)") from None
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own message says what is wrong
        raise GameSpecError(f"policy {name!r}: onnx: {path.name} cannot be loaded by onnxruntime: "
                            f"{str(exc).strip()[:400]}") from None
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    for state_in, state_out in policy.state.items():
        if state_in not in inputs:
            raise GameSpecError(f"policy {name!r}: state: {state_in!r} is not an input of {path.name} "
                                f"(inputs: {', '.join(inputs)})")
        if state_out not in outputs:
            raise GameSpecError(f"policy {name!r}: state: {state_out!r} is not an output of {path.name} "
                                f"(outputs: {', '.join(outputs)})")
    data_in = _one(name, "input", policy.input, [n for n in inputs if n not in policy.state], inputs, path)
    data_out = _one(name, "output", policy.output, [n for n in outputs if n not in policy.state.values()],
                    outputs, path)
    for what, arg in [("input", inputs[data_in]), *(("state", inputs[s]) for s in policy.state)]:
        if arg.type != "tensor(float)":
            raise GameSpecError(f"policy {name!r}: {what} {arg.name!r} of {path.name} is {arg.type}; "
                                "the platform feeds float32 tensors")
    return {"input": data_in, "input_shape": _static(inputs[data_in].shape), "output": data_out,
            "state": [{"input": i, "output": o, "shape": _static(inputs[i].shape)}
                      for i, o in sorted(policy.state.items())]}


def _one(name: str, what: str, given: str | None, candidates: list[str], names: dict, path: Path) -> str:
    if given is not None:
        if given not in names:
            raise GameSpecError(f"policy {name!r}: {what}: {given!r} is not an {what} of {path.name} "
                                f"({what}s: {', '.join(names)})")
        return given
    if len(candidates) != 1:
        raise GameSpecError(f"policy {name!r}: {path.name} has {len(candidates)} {what}s besides the "
                            f"recurrent state ({', '.join(candidates) or 'none'}): name one with {what!r}")
    return candidates[0]


def check_policy_files(name: str, policy: Policy, directory: Path) -> None:
    if isinstance(policy, PythonPolicy):
        _compiles(name, _inside(name, policy.python, directory, "file"))
    elif isinstance(policy, OnnxPolicy):
        _compiles(name, _inside(name, Path(policy.obs_file), directory, "obs file"))
        model = _inside(name, policy.onnx, directory, "onnx model")
        if policy._resolved is None:
            policy._resolved = resolve_onnx(name, policy, model)


def check_partners_run(spec: GameSpec, policies: dict[str, Any], directory: Path) -> None:
    from worker.env_host import EnvHost, forget_search_path
    from worker.policies import build_seats

    used = spec.policies_used()
    if not used:
        return
    for name in sorted(used):
        check_policy_files(name, policies[name], directory)
    seated = dict(spec.partners)
    stand_in = sorted(used - set(seated.values()))
    if stand_in:  # the dropout stand-in, tried in the last person's seat
        seated[spec.humans[-1]] = stand_in[0]
    partners = {seat: partner_spec(name, policies[name], directory) for seat, name in seated.items()}
    folders = env_search_path(spec, directory)
    policy_folders = [str((directory / p[key]).parent.resolve())
                      for p in partners.values() for key in ("file", "obs_file") if key in p]
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
