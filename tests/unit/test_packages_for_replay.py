"""What the browser installs, the server's replay imports: an experiment's own pyscript.toml,
a local Pyodide release folder (pyodide_packages_dir) checked against its lock file, the
wheel cache the CPython replay imports from, and the replay pool itself."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from server.multiplayer.replay import ReplayFailed, replay, run_job
from server.multiplayer.replay_pool import Replays
from server.multiplayer.wheels import WheelCache, unusable_reason, warn_unusable
from server.study.packages import (
    PKG_ROUTE,
    PackageConfig,
    PackageConfigError,
    PackageSource,
    resolve_packages,
)
from tests.wheels import build_wheel

VENDORED = {"info": {"abi_version": "2026_0", "version": "0.30.0"}, "packages": {}}


def experiment(directory: Path, name: str = "study") -> SimpleNamespace:
    directory.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(name=name, directory=directory)


def source(tmp_path: Path, text: str = "packages = []\n") -> PackageSource:
    toml = tmp_path / "pyscript.toml"
    toml.write_text(text)
    return PackageSource(toml, tmp_path / "no-vendor")


# -- per-experiment pyscript.toml ----------------------------------------------------------------

def test_experiment_packages_are_added_to_the_global_ones_under_their_own_prefix(tmp_path):
    build_wheel(tmp_path / "wheels", "common", "1.0", {"common": "X = 1\n"})
    packages = source(tmp_path, 'packages = ["./wheels/common-1.0-py3-none-any.whl"]\n')
    exp_a = experiment(tmp_path / "experiments" / "a", "a")
    exp_b = experiment(tmp_path / "experiments" / "b", "b")
    own = build_wheel(exp_a.directory / "wheels", "only_a", "2.0", {"only_a": "Y = 2\n"})
    (exp_a.directory / "pyscript.toml").write_text(f'packages = ["./wheels/{own.name}"]\n')

    a = packages.for_experiment(exp_a)
    assert a.entries == [{"name": "common", "url": PKG_ROUTE + "wheels/common-1.0-py3-none-any.whl"},
                         {"name": "only_a", "url": PKG_ROUTE + f"x/a/wheels/{own.name}"}]
    assert a.local_files[f"x/a/wheels/{own.name}"] == own.resolve()
    assert list(a.wheels) == ["common", "only_a"]
    b = packages.for_experiment(exp_b)  # no own file: the global list alone
    assert b.entries == packages.current().entries
    assert f"x/a/wheels/{own.name}" not in b.local_files


def test_an_experiment_may_pin_another_version_of_a_global_package(tmp_path):
    build_wheel(tmp_path / "wheels", "common", "1.0", {"common": "X = 1\n"})
    packages = source(tmp_path, 'packages = ["./wheels/common-1.0-py3-none-any.whl"]\n')
    exp = experiment(tmp_path / "exp")
    newer = build_wheel(exp.directory / "wheels", "common", "2.0", {"common": "X = 2\n"})
    (exp.directory / "pyscript.toml").write_text(f'packages = ["./wheels/{newer.name}"]\n')
    resolved = packages.for_experiment(exp)
    assert [e["url"] for e in resolved.entries] == [PKG_ROUTE + f"x/study/wheels/{newer.name}"]
    assert resolved.wheels == {"common": newer.resolve()}


def test_experiment_packages_are_re_read_when_the_file_changes(tmp_path):
    packages = source(tmp_path)
    exp = experiment(tmp_path / "exp")
    own = exp.directory / "pyscript.toml"
    own.write_text("packages = []\n")
    assert packages.for_experiment(exp).entries == []
    wheel = build_wheel(exp.directory / "wheels", "late", "1.0", {"late": ""})
    own.write_text(f'packages = ["./wheels/{wheel.name}"]\n')
    os.utime(own, ns=(own.stat().st_mtime_ns + 10**9,) * 2)
    assert [e["name"] for e in packages.for_experiment(exp).entries] == ["late"]


def test_an_error_in_an_experiment_pyscript_toml_names_that_file(tmp_path):
    packages = source(tmp_path)
    exp = experiment(tmp_path / "exp")
    (exp.directory / "pyscript.toml").write_text('packages = ["./wheels/gone-1.0-py3-none-any.whl"]\n')
    with pytest.raises(PackageConfigError) as info:
        packages.for_experiment(exp)
    assert str(exp.directory / "pyscript.toml") in str(info.value) and "not found" in str(info.value)
    (exp.directory / "pyscript.toml").write_text("packages = 3\n")
    with pytest.raises(PackageConfigError, match="packages"):
        packages.for_experiment(exp)


# -- pyodide_packages_dir ------------------------------------------------------------------------

def fake_release(folder: Path, tamper: bool = False, abi: str = "2026_0") -> Path:
    """A Pyodide release folder in miniature: two wheels (one depending on the other) and
    a lock file with their hashes."""
    base = build_wheel(folder, "tinybase", "1.0", {"tinybase": "BASE = 1\n"})
    top = build_wheel(folder, "tinytop", "1.0", {"tinytop": "from tinybase import BASE\nTOP = BASE + 1\n"})
    lock = {"info": {"abi_version": abi, "version": "0.30.0"}, "packages": {}}
    for wheel, deps in ((base, []), (top, ["tinybase", "micropip"])):
        name = wheel.name.split("-")[0]
        lock["packages"][name] = {"name": name, "file_name": wheel.name, "depends": deps,
                                  "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
    lock["packages"]["micropip"] = {"name": "micropip", "file_name": "micropip.whl", "depends": [],
                                    "sha256": "0" * 64}
    (folder / "pyodide-lock.json").write_text(json.dumps(lock))
    if tamper:
        top.write_bytes(top.read_bytes() + b"\0")
    return folder


def test_pyodide_package_resolves_to_the_release_folder_with_its_dependencies(tmp_path):
    release = fake_release(tmp_path / "pyodide-release")
    toml = tmp_path / "conf" / "pyscript.toml"
    toml.parent.mkdir()
    config = PackageConfig(packages=["tinytop"], pyodide_packages_dir="../pyodide-release")
    resolved = resolve_packages(config, toml, VENDORED, prefix="x/study/")
    base, top = "tinybase-1.0-py3-none-any.whl", "tinytop-1.0-py3-none-any.whl"
    # dependencies first, micropip left out (vendored), everything on our own origin
    assert resolved.entries == [{"name": "tinybase", "url": PKG_ROUTE + "x/study/pyodide/" + base},
                                {"name": "tinytop", "url": PKG_ROUTE + "x/study/pyodide/" + top}]
    assert resolved.local_files == {"x/study/pyodide/" + base: release / base,
                                    "x/study/pyodide/" + top: release / top}
    assert list(resolved.wheels) == ["tinybase", "tinytop"]


def test_a_release_file_that_does_not_match_its_lock_fails_naming_it(tmp_path):
    fake_release(tmp_path / "rel", tamper=True)
    toml = tmp_path / "pyscript.toml"
    config = PackageConfig(packages=["tinytop"], pyodide_packages_dir="rel")
    with pytest.raises(PackageConfigError) as info:
        resolve_packages(config, toml, VENDORED)
    assert str(tmp_path / "rel" / "tinytop-1.0-py3-none-any.whl") in str(info.value)
    assert str(toml) in str(info.value) and "sha256" in str(info.value)


def test_a_release_for_another_pyodide_or_without_a_lock_fails(tmp_path):
    toml = tmp_path / "pyscript.toml"
    fake_release(tmp_path / "old", abi="2024_0")
    with pytest.raises(PackageConfigError, match="2024_0"):
        resolve_packages(PackageConfig(packages=["tinytop"], pyodide_packages_dir="old"), toml, VENDORED)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackageConfigError, match="no pyodide-lock.json"):
        resolve_packages(PackageConfig(packages=[], pyodide_packages_dir="empty"), toml, VENDORED)


def test_a_name_the_release_lacks_is_reported_not_fetched(tmp_path):
    fake_release(tmp_path / "rel")
    entries = resolve_packages(PackageConfig(packages=["numpy"], pyodide_packages_dir="rel"),
                               tmp_path / "pyscript.toml", VENDORED).entries
    assert entries[0]["url"] is None and "pyodide_packages_dir" in entries[0]["reason"]


def test_experiment_pyscript_toml_may_name_its_own_release_folder(tmp_path):
    packages = source(tmp_path)
    exp = experiment(tmp_path / "exp")
    fake_release(tmp_path / "release")
    (exp.directory / "pyscript.toml").write_text('packages = ["tinybase"]\n'
                                                 'pyodide_packages_dir = "../release"\n')
    resolved = packages.for_experiment(exp)
    assert resolved.entries == [{"name": "tinybase",
                                 "url": PKG_ROUTE + "x/study/pyodide/tinybase-1.0-py3-none-any.whl"}]


# -- wheels for CPython -----------------------------------------------------------------------------

@pytest.mark.parametrize(("filename", "usable"), [
    ("a-1.0-py3-none-any.whl", True),
    ("a-1.0-py2.py3-none-any.whl", True),
    ("a-1.0-1-py3-none-any.whl", True),
    ("numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl", False),
    ("a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", False),
    ("a-1.0-cp313-abi3-emscripten_3_1_58_wasm32.whl", False),
    ("a-1.0-py2-none-any.whl", False),
])
def test_only_pure_python_wheels_are_usable_by_cpython(filename, usable):
    reason = unusable_reason(Path(filename))
    assert (reason is None) == usable
    if not usable:
        assert filename in reason


def test_a_pyodide_build_is_named_in_the_startup_warning(caplog):
    wheel = Path("numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl")
    assert warn_unusable("experiment physics", [Path("ok-1.0-py3-none-any.whl"), wheel])
    text = caplog.text
    assert "experiment physics" in text and wheel.name in text and "Pyodide" in text and "replay" in text


def test_wheel_cache_unpacks_once_per_content(tmp_path):
    wheel = build_wheel(tmp_path / "w", "cached", "1.0", {"cached": "V = 1\n"})
    cache = WheelCache(tmp_path / "cache")
    first = cache.folder(wheel)
    assert (first / "cached.py").read_text() == "V = 1\n"
    assert WheelCache(tmp_path / "cache").folder(wheel) == first  # another process: same folder
    build_wheel(tmp_path / "w", "cached", "1.0", {"cached": "V = 2\n"})  # replaced, same name
    os.utime(wheel, ns=(wheel.stat().st_mtime_ns + 10**9,) * 2)
    second = cache.folder(wheel)
    assert second != first and (second / "cached.py").read_text() == "V = 2\n"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([first.name, second.name])


# -- the replay ----------------------------------------------------------------------------------------

ENV_USING_HELPER = '''
import helper


class Env:
    def reset(self, seed=None):
        self.total = 0
        return 0, {}

    def step(self, actions):
        self.total += helper.STEP
        if self.total >= RAISE_AT:
            import browser_only
        return self.total, {"p0": 0}, False, False, {}

    def render(self):
        return []


RAISE_AT = 10**9


def create_env(config):
    global RAISE_AT
    RAISE_AT = config.get("raise_at", RAISE_AT)
    return Env()
'''


def helper_wheels(tmp_path: Path) -> tuple[Path, Path]:
    one = build_wheel(tmp_path / "one", "helper", "1.0", {"helper": "STEP = 1\n"})
    two = build_wheel(tmp_path / "two", "helper", "2.0", {"helper": "STEP = 2\n"})
    return one, two


def job(tmp_path: Path, wheel: Path, end_frame: int = 5, **config) -> dict:
    return {"env_source": ENV_USING_HELPER, "env_config": config, "players": ["p0"], "seed": 1,
            "inputs": {}, "end_frame": end_frame, "default_action": 0, "filename": "env.py",
            "search_path": [], "wheels": [str(wheel)], "cache_dir": str(tmp_path / "cache")}


def expected(tmp_path: Path, wheel: Path, end_frame: int = 5) -> str:
    folders = WheelCache(tmp_path / "check").search_path([wheel])
    return run_job({**job(tmp_path, wheel, end_frame), "wheels": [], "search_path": folders})["hash"]


def test_run_job_imports_the_wheel_and_leaves_nothing_behind(tmp_path):
    import sys

    one, two = helper_wheels(tmp_path)
    first, second = run_job(job(tmp_path, one)), run_job(job(tmp_path, two))
    assert first["hash"] != second["hash"]  # each replay saw its own helper
    assert "helper" not in sys.modules
    assert not any("cache" in p for p in sys.path)


def test_an_env_raising_in_the_replay_is_reported_with_its_frame(tmp_path):
    one, _ = helper_wheels(tmp_path)
    result = run_job(job(tmp_path, one, end_frame=20, raise_at=4))
    assert result == {"error": "ModuleNotFoundError: No module named 'browser_only' (frame 3)"}
    with pytest.raises(ReplayFailed, match="loading the env"):
        replay("raise RuntimeError('broken')", {}, ["p0"], 1, {}, 3, 0)


def test_replays_in_the_process_pool_keep_each_rooms_modules_apart(tmp_path):
    one, two = helper_wheels(tmp_path)
    env = tmp_path / "env.py"
    env.write_text(ENV_USING_HELPER)
    exps = {}
    for name, wheel in (("first", one), ("second", two)):
        exp = experiment(tmp_path / name, name)
        (exp.directory / "pyscript.toml").write_text(f'packages = ["{wheel}"]\n')
        exps[name] = exp
    packages = source(tmp_path)
    game = SimpleNamespace(env_source=ENV_USING_HELPER, env_config={}, default_action=0, env_path=env)
    want = {"first": expected(tmp_path, one), "second": expected(tmp_path, two)}

    async def go(replays: Replays) -> list:
        try:
            order = ("first", "second", "first", "second")
            runs = [replays.run(exps[n], game, ["p0"], 1, {}, 5) for n in order]
            results = [r["hash"] for r in await asyncio.gather(*runs)]
            with pytest.raises(ReplayFailed, match="browser_only"):
                raising = SimpleNamespace(**{**vars(game), "env_config": {"raise_at": 1}})
                await replays.run(exps["first"], raising, ["p0"], 1, {}, 5)
            return results
        finally:
            await replays.close()

    # one worker: every replay in the same process, one after another
    pooled = asyncio.run(go(Replays(1, packages, tmp_path / "cache")))
    assert pooled == [want["first"], want["second"], want["first"], want["second"]]
    threaded = asyncio.run(go(Replays(0, packages, tmp_path / "cache")))  # the old way, same answers
    assert threaded == pooled


def test_a_closed_pool_refuses_replays(tmp_path):
    replays = Replays(1, None, tmp_path / "cache")
    asyncio.run(replays.close())
    game = SimpleNamespace(env_source=ENV_USING_HELPER, env_config={}, default_action=0,
                           env_path=tmp_path / "e.py")
    with pytest.raises(ReplayFailed, match="shutting down"):
        asyncio.run(replays.run(experiment(tmp_path / "e"), game, ["p0"], 1, {}, 3))
