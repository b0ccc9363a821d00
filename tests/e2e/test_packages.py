"""Adding a wheel to pyscript.toml makes it importable by the env after a page reload,
offline; a wheel whose dependency is not listed fails with a message naming it."""

from __future__ import annotations

import json

from tests.e2e.browser import wait_stage, wait_until
from tests.servers import write_experiment
from tests.wheels import build_wheel

ENV_USING_WHEEL = '''
import tinypkg


class Env:
    def reset(self, seed=None):
        return 0, {}

    def step(self, actions):
        return 0, {"p0": 0}, False, False, {"tinypkg": tinypkg.VALUE, "doubled": tinypkg.double(21)}

    def render(self):
        return [{"type": "text", "x": 10, "y": 20, "text": tinypkg.VALUE}]


def create_env(config):
    return Env()
'''


def test_wheel_added_to_pyscript_toml_is_importable_after_reload(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "wheel", env_source=ENV_USING_WHEEL, auto_start=True, max_steps=5)
    build_wheel(tmp_path / "wheels", "tinypkg", "0.1.0",
                {"tinypkg": "VALUE = 'hello from a wheel'\n\ndef double(x):\n    return 2 * x\n"})
    toml = tmp_path / "pyscript.toml"
    toml.write_text("packages = []\n")
    server = servers(experiments_dir=exps, pyscript_toml=toml)
    page, watch = new_page()

    page.goto(server.url + "/x/wheel")
    assert wait_stage(page, "ready", "error", timeout=60) == "error"  # not installed yet
    assert "tinypkg" in page.inner_text("#error")

    toml.write_text('packages = ["./wheels/tinypkg-0.1.0-py3-none-any.whl"]\n')
    page.reload()
    assert wait_stage(page, "done", "error", timeout=60) == "done", watch.dump()
    rows = wait_until(lambda: server.query("SELECT info FROM steps"), 10)
    assert json.loads(rows[0][0]) == {"tinypkg": "hello from a wheel", "doubled": 42}
    assert any("/pkgs/wheels/tinypkg-0.1.0-py3-none-any.whl" in u for u in watch.requests)
    assert watch.foreign_requests(server.url) == []


def test_wheel_with_unlisted_dependency_names_it(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "wheel", env_source=ENV_USING_WHEEL, auto_start=True, max_steps=5)
    build_wheel(tmp_path / "wheels", "tinypkg", "0.1.0", {"tinypkg": "VALUE = 'x'\n"},
                requires=["leftpadder>=1.0"])
    toml = tmp_path / "pyscript.toml"
    toml.write_text('packages = ["./wheels/tinypkg-0.1.0-py3-none-any.whl"]\n')
    server = servers(experiments_dir=exps, pyscript_toml=toml)
    page, watch = new_page()
    page.goto(server.url + "/x/wheel")
    assert wait_stage(page, "ready", "error", timeout=60) == "error", watch.dump()
    text = page.inner_text("#error")
    assert "missing dependencies" in text and "tinypkg needs leftpadder" in text
    assert watch.foreign_requests(server.url) == []
