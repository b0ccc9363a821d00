"""?synctest=N runs the determinism check in the browser's own Pyodide."""

from __future__ import annotations

import json

from tests.e2e.browser import body, wait_stage
from tests.servers import ROOT, write_experiment
from tests.unit.test_synctest import LEAKY_ENV


def test_synctest_in_the_browser_passes_kitchen_and_names_the_leak(tmp_path, servers, new_page):
    exps = tmp_path / "experiments"
    write_experiment(exps, "kitchen", env_source=(ROOT / "experiments/kitchen/env.py").read_text(),
                     players=["p0", "p1"], start_key="Enter", controls={"ArrowUp": "up", " ": "interact"})
    write_experiment(exps, "leaky", env_source=LEAKY_ENV, controls={"ArrowRight": 1}, default_action=0)
    server = servers(experiments_dir=exps)
    reports = {}
    for name in ("kitchen", "leaky"):
        page, watch = new_page()
        page.goto(f"{server.url}/x/{name}?synctest=4")
        assert wait_stage(page, "done", "error", timeout=90) == "done", watch.dump()
        reports[name] = json.loads(body(page, "synctest"))
    assert reports["kitchen"]["ok"] and reports["kitchen"]["checked"] == (300 - 3) * 4
    assert not reports["leaky"]["ok"] and reports["leaky"]["first_divergent_frame"] == 10
