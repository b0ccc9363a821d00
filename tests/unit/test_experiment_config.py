"""server/study/experiment.py and server/study/packages.py: researcher-facing config files."""

from pathlib import Path

import pytest

from server.study.experiment import ExperimentError, load_experiment, load_experiments
from server.study.packages import (
    CDN_TEMPLATE,
    PKG_ROUTE,
    PackageConfig,
    PackageConfigError,
    load_package_config,
    resolve_packages,
)

ENV_OK = "def create_env(config):\n    return None\n"
VALID = {"env": "env.py", "controls": {"ArrowLeft": "left", "ArrowRight": "right"},
         "default_action": "noop", "fps": 20}


def make(root: Path, folder_name: str, /, body="auto", env_text: str | None = ENV_OK,
         **fields) -> Path:
    """An experiment folder; ``fields`` override VALID, ``body`` replaces the whole file."""
    folder = root / folder_name
    folder.mkdir(parents=True, exist_ok=True)
    if env_text is not None:
        (folder / "env.py").write_text(env_text)
    if body == "auto":
        body = f"EXPERIMENT = {({**VALID, **fields})!r}\n"
    path = folder / "experiment.py"
    path.write_text(body)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ExperimentError) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message or str(path.parent / "env.py") in message
    return message


def test_valid_experiment_loads_with_env_relative_to_its_folder(tmp_path):
    path = make(tmp_path, "tapper", title="Tap")
    exp = load_experiment(path)
    assert exp.name == "tapper"  # defaults to the folder name
    assert exp.title == "Tap" and exp.fps == 20
    assert exp.game(None).env_path == tmp_path / "tapper" / "env.py"
    assert exp.game(None).env_source == ENV_OK
    assert exp.controls == VALID["controls"]


def test_absolute_env_path_is_kept(tmp_path):
    other = tmp_path / "shared_env.py"
    other.write_text(ENV_OK)
    exp = load_experiment(make(tmp_path, "abs", env_text=None, env=str(other)))
    assert exp.game(None).env_path == other and exp.game(None).env_source == ENV_OK


@pytest.mark.parametrize("fields, field", [
    ({"fps": 0}, "fps"),
    ({"fps": 500}, "fps"),
    ({"bogus_key": 1}, "bogus_key"),
    ({"controls": {}}, "controls"),
    ({"players": []}, "players"),
    ({"name": "Bad Name!"}, "name"),
    ({"timeouts": {"step": -1}}, "timeouts.step"),
    ({"timeouts": {"stpe": 1}}, "timeouts.stpe"),
])
def test_invalid_fields_name_file_and_field(tmp_path, fields, field):
    message = error_of(make(tmp_path, "bad", **fields))
    assert f"EXPERIMENT.{field}:" in message


def test_extra_key_is_forbidden(tmp_path):
    assert "Extra inputs are not permitted" in error_of(make(tmp_path, "extra", colour="red"))


def test_missing_controls(tmp_path):
    body = "EXPERIMENT = {'env': 'env.py'}\n"
    message = error_of(make(tmp_path, "nocontrols", body=body))
    assert "EXPERIMENT.controls:" in message and "required" in message


def test_start_key_that_is_a_control_is_rejected(tmp_path):
    message = error_of(make(tmp_path, "startkey", controls={" ": "jump"}))
    assert "start_key" in message and "control" in message
    # with auto_start the start key is unused, so it may be a control
    assert load_experiment(make(tmp_path, "auto", controls={" ": "jump"}, auto_start=True))


def test_model_level_error_is_not_prefixed_twice(tmp_path):
    # Cosmetic bug: _format turns an empty loc into "EXPERIMENT", then prefixes "EXPERIMENT." again.
    message = error_of(make(tmp_path, "startkey", controls={" ": "jump"}))
    assert "EXPERIMENT.EXPERIMENT" not in message


@pytest.mark.parametrize("body", ["X = 1\n", "EXPERIMENT = None\n", "EXPERIMENT = [('env', 'env.py')]\n"])
def test_experiment_not_a_dict(tmp_path, body):
    assert "must define EXPERIMENT" in error_of(make(tmp_path, "nodict", body=body))


def test_experiment_file_that_raises(tmp_path):
    message = error_of(make(tmp_path, "raises", body="import no_such_module_xyz\n"))
    assert "ModuleNotFoundError" in message and "no_such_module_xyz" in message


def test_syntax_error_in_experiment_file(tmp_path):
    message = error_of(make(tmp_path, "syntax", body="EXPERIMENT = {\n"))
    assert "line 1" in message


def test_syntax_error_in_env_file_names_env_path_and_line(tmp_path):
    path = make(tmp_path, "envsyntax", env_text="x = 1\ndef create_env(config)\n    return 1\n")
    message = error_of(path)
    assert str(path.parent / "env.py") in message
    assert "line 2" in message


def test_missing_env_file(tmp_path):
    path = make(tmp_path, "noenv", env_text=None)
    message = error_of(path)
    assert str(path.parent / "env.py") in message and "not found" in message


def test_env_without_create_env(tmp_path):
    message = error_of(make(tmp_path, "nocreate", env_text="def make_env(config):\n    return 1\n"))
    assert "create_env" in message


def test_load_experiments_reports_every_broken_experiment(tmp_path):
    good = make(tmp_path, "good")
    broken_fps = make(tmp_path, "broken_fps", fps=0)
    broken_env = make(tmp_path, "broken_env", env_text="def create_env(:\n")
    with pytest.raises(ExperimentError) as info:
        load_experiments(tmp_path)
    message = str(info.value)
    assert str(broken_fps) in message and "EXPERIMENT.fps" in message
    assert str(broken_env.parent / "env.py") in message
    assert str(good) not in message


def test_load_experiments_returns_all_valid_ones(tmp_path):
    make(tmp_path, "one")
    make(tmp_path, "two", name="second")
    (tmp_path / "not_an_experiment").mkdir()
    found = load_experiments(tmp_path)
    assert sorted(found) == ["one", "second"]


def test_duplicate_experiment_names_are_an_error(tmp_path):
    make(tmp_path, "a", name="same")
    make(tmp_path, "b", name="same")
    with pytest.raises(ExperimentError, match="already used"):
        load_experiments(tmp_path)


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(ExperimentError, match="no experiments found") as info:
        load_experiments(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_real_catch_experiment_loads():
    root = Path(__file__).resolve().parents[2] / "experiments"
    assert "catch" in load_experiments(root)


# -- server/study/packages.py ------------------------------------------------------------

def write_toml(tmp_path, text) -> Path:
    path = tmp_path / "pyscript.toml"
    path.write_text(text)
    return path


def test_package_config_loads(tmp_path):
    cfg = load_package_config(write_toml(tmp_path, 'packages = ["./a.whl"]\nallow_cdn = true\n'))
    assert cfg.packages == ["./a.whl"] and cfg.allow_cdn is True


@pytest.mark.parametrize("text, needle", [
    ("packages = [\n", "invalid TOML"),
    ("packages = []\nallow_cnd = true\n", "allow_cnd"),
    ("packages = 3\n", "packages"),
])
def test_package_config_errors_name_the_file(tmp_path, text, needle):
    path = write_toml(tmp_path, text)
    with pytest.raises(PackageConfigError) as info:
        load_package_config(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_missing_package_config(tmp_path):
    with pytest.raises(PackageConfigError, match="not found"):
        load_package_config(tmp_path / "nope.toml")


def test_local_wheel_resolves_to_pkgs_url(tmp_path):
    wheel = tmp_path / "wheels" / "mylib-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"PK")
    toml = write_toml(tmp_path, "")
    resolved = resolve_packages(PackageConfig(packages=["./wheels/" + wheel.name]), toml, None)
    assert resolved.entries == [{"name": "mylib", "url": PKG_ROUTE + "wheels/" + wheel.name}]
    assert resolved.local_files == {"wheels/" + wheel.name: wheel.resolve()}


def test_missing_wheel_raises(tmp_path):
    toml = write_toml(tmp_path, "")
    with pytest.raises(PackageConfigError, match="not found") as info:
        resolve_packages(PackageConfig(packages=["./wheels/gone-1.0-py3-none-any.whl"]), toml, None)
    assert str(toml) in str(info.value)


LOCK = {"info": {"version": "1.2.3"}, "packages": {
    "numpy": {"name": "numpy", "file_name": "numpy-2.whl", "depends": ["six"]},
    "six": {"name": "six", "file_name": "six-1.whl", "depends": []},
}}


def test_bare_name_without_allow_cdn_has_no_url_and_a_reason(tmp_path):
    toml = write_toml(tmp_path, "")
    entries = resolve_packages(PackageConfig(packages=["numpy", "leftpad"]), toml, LOCK).entries
    assert [(e["name"], e["url"]) for e in entries] == [("numpy", None), ("leftpad", None)]
    assert "allow_cdn" in entries[0]["reason"]
    assert "wheel" in entries[1]["reason"]


def test_allow_cdn_resolves_dependencies_first(tmp_path):
    toml = write_toml(tmp_path, "")
    entries = resolve_packages(PackageConfig(packages=["numpy"], allow_cdn=True), toml, LOCK).entries
    cdn = CDN_TEMPLATE.format(version="1.2.3")
    assert cdn == "https://cdn.jsdelivr.net/pyodide/v1.2.3/full/"
    assert entries == [{"name": "six", "url": cdn + "six-1.whl"},
                       {"name": "numpy", "url": cdn + "numpy-2.whl"}]


def test_remote_url_needs_allow_cdn(tmp_path):
    toml = write_toml(tmp_path, "")
    url = "https://example.org/wheels/foo-1.0-py3-none-any.whl"
    with pytest.raises(PackageConfigError, match="remote URL") as info:
        resolve_packages(PackageConfig(packages=[url]), toml, None)
    assert str(toml) in str(info.value)
    allowed = resolve_packages(PackageConfig(packages=[url], allow_cdn=True), toml, None)
    assert allowed.entries == [{"name": "foo", "url": url}]


def test_latency_matching_keys_are_off_by_default_and_read_at_the_top_or_per_scene(tmp_path):
    exp = load_experiment(make(tmp_path, "plain", players=["p0", "p1"]))
    assert exp.multiplayer.match_rtt_ms is None and exp.multiplayer.match_fallback_s is None
    exp = load_experiment(make(tmp_path, "matched", players=["p0", "p1"],
                               multiplayer={"match_rtt_ms": 120, "match_fallback_s": 20},
                               scenes=[{"type": "game", "id": "a"},
                                       {"type": "game", "id": "b", "multiplayer": {"match_rtt_ms": 60}}]))
    a, b = exp.game(None, "a").multiplayer, exp.game(None, "b").multiplayer
    assert (a.match_rtt_ms, a.match_fallback_s) == (120, 20)
    assert (b.match_rtt_ms, b.match_fallback_s) == (60, 20)


@pytest.mark.parametrize(("multiplayer", "scene", "needles"), [
    ({"match_rtt_ms": 0}, None, ["EXPERIMENT.multiplayer.match_rtt_ms:", "greater than 0"]),
    ({"match_rtt_ms": -5}, None, ["EXPERIMENT.multiplayer.match_rtt_ms:"]),
    ({"match_rtt_ms": "fast"}, None, ["EXPERIMENT.multiplayer.match_rtt_ms:"]),
    ({"match_rtt_ms": 100, "match_fallback_s": 0}, None, ["EXPERIMENT.multiplayer.match_fallback_s:"]),
    ({"match_rtt_ms": 100, "match_fallback_s": 120}, None,
     ["EXPERIMENT.multiplayer.match_fallback_s:", "must be below wait_timeout (120 s)"]),
    ({"match_rtt_ms": 100, "match_fallback_s": 30, "wait_timeout": 10}, None,
     ["EXPERIMENT.multiplayer.match_fallback_s:", "(30 s) must be below wait_timeout (10 s)"]),
    ({"match_fallback_s": 30}, None, ["EXPERIMENT.multiplayer.match_fallback_s:", "needs match_rtt_ms"]),
    # a scene's wait_timeout under the experiment's fallback: the scene and the field are named
    ({"match_rtt_ms": 100, "match_fallback_s": 30}, {"wait_timeout": 20},
     ["scene 'duo': multiplayer.match_fallback_s:", "must be below wait_timeout (20 s)"]),
], ids=["zero", "negative", "string", "zero-fallback", "fallback-at-timeout", "fallback-over-timeout",
        "fallback-alone", "scene-timeout"])
def test_latency_matching_keys_are_checked_and_the_error_names_the_field(tmp_path, multiplayer, scene,
                                                                        needles):
    scenes = [{"type": "game", "id": "duo", **({"multiplayer": scene} if scene else {})}]
    message = error_of(make(tmp_path, "bad", players=["p0", "p1"], multiplayer=multiplayer, scenes=scenes))
    for needle in needles:
        assert needle in message, message
