"""Failures reach the participant as a readable error screen, never a hang, and the
steps taken before the failure are kept."""

from __future__ import annotations

import json
import time

from tests.e2e.browser import wait_stage, wait_until
from tests.servers import write_experiment

RAISING_ENV = '''
class Env:
    def reset(self, seed=None):
        self.t = 0
        return 0, {}

    def step(self, actions):
        self.t += 1
        if self.t == 10:
            raise ValueError("the cheese ran out at step 10")
        return self.t, {"p0": 0}, False, False, {"t": self.t}

    def render(self):
        return [{"type": "text", "x": 10, "y": 20, "text": str(self.t)}]


def create_env(config):
    return Env()
'''


def error_text(page) -> str:
    return page.inner_text("#error")


def test_env_exception_shows_python_error_and_keeps_steps(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "raiser", env_source=RAISING_ENV, auto_start=True, upload_every=4)
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/raiser")
    assert wait_stage(page, "done", "error", timeout=60) == "error", watch.dump()
    text = error_text(page)
    assert "ValueError" in text and "the cheese ran out at step 10" in text
    assert "Traceback" in text  # the Python traceback is shown for the researcher
    assert page.is_hidden("#game")

    frames = wait_until(lambda: [r[0] for r in server.query("SELECT frame FROM steps ORDER BY frame")]
                        if server.query("SELECT status FROM episodes") == [("error",)] else None, 10)
    assert frames == list(range(1, 10))
    events = server.query("SELECT kind, payload FROM events")
    assert any(k == "worker_error" and "cheese" in json.loads(p)["message"] for k, p in events)


def test_env_code_that_fails_to_load_is_reported(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    source = "import not_a_module_anywhere\n\ndef create_env(config):\n    return None\n"
    write_experiment(exps, "broken", env_source=source, auto_start=True)
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/broken")
    assert wait_stage(page, "ready", "error", timeout=60) == "error", watch.dump()
    text = error_text(page)
    assert "ModuleNotFoundError" in text and "not_a_module_anywhere" in text


def test_terminated_worker_is_detected_within_the_step_timeout(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", auto_start=True, max_steps=100000, env_config={"lives": 1000},
                     timeouts={"step": 1.5})
    server = servers(experiments_dir=exps)
    page, watch = new_page()
    page.goto(server.url + "/x/catch")
    assert wait_stage(page, "playing", "error", timeout=60) == "playing", watch.dump()
    page.wait_for_function("Number(document.body.dataset.frame) > 20")
    killed = time.monotonic()
    page.evaluate("document.querySelector('script[type=py][worker]').xworker.terminate()")
    assert wait_stage(page, "error", "done", timeout=1.5 + 2.0) == "error"
    detected = time.monotonic() - killed
    assert detected <= 1.5 + 2.0
    assert "stopped responding" in error_text(page) and "STEP" in error_text(page)
    frame = int(page.get_attribute("body", "data-frame"))
    page.wait_for_timeout(500)
    assert int(page.get_attribute("body", "data-frame")) == frame  # the game loop stopped


def test_unknown_package_shows_clear_install_error(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", auto_start=True)
    toml = tmp_path / "pyscript.toml"
    toml.write_text('packages = ["definitely-not-a-package"]\n')
    server = servers(experiments_dir=exps, pyscript_toml=toml)
    page, watch = new_page()
    page.goto(server.url + "/x/catch")
    assert wait_stage(page, "ready", "error", timeout=60) == "error", watch.dump()
    text = error_text(page)
    assert "PackageInstallError" in text and "definitely-not-a-package" in text
    assert "wheel" in text  # says what to do about it
    assert watch.foreign_requests(server.url) == []  # and did not go looking on PyPI
