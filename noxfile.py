"""Every command a researcher or CI runs. Each session installs what it needs.

    nox -s serve            start the server with the example experiment
    nox -s tests e2e        all tests (unit + integration, then real-browser e2e)
    nox -s bench            benchmarks -> bench/results.json + bench/results.png
    nox -s lint             ruff
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "e2e"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

CHROMIUM = os.environ.get("COPLAY_CHROMIUM", "/usr/bin/chromium")


def _vendor(session: nox.Session) -> None:
    session.run("python", "-m", "server.vendor")


def _ensure_chromium(session: nox.Session) -> None:
    """Playwright cannot download browsers here: use Debian's chromium."""
    if Path(CHROMIUM).exists():
        return
    if shutil.which("apt-get") is None:
        session.error(f"{CHROMIUM} is missing and apt-get is unavailable: "
                      "install Chromium and set COPLAY_CHROMIUM")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(*sudo, "apt-get", "update", "-q", external=True, env=env)
    session.run(*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium",
                "fonts-dejavu-core", external=True, env=env)


@nox.session
def serve(session: nox.Session) -> None:
    """Run the server (args pass through: nox -s serve -- --port 9000)."""
    session.install("-r", "requirements.txt")
    _vendor(session)
    session.run("python", "app.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, unit and integration tests (real server processes, real Socket.IO clients)."""
    session.install("-r", "requirements-test.txt")
    session.run("ruff", "check", ".")
    _vendor(session)
    session.run("pytest", "tests/unit", "tests/integration", "-q", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """Real-browser tests: Chromium through Playwright against real servers."""
    _ensure_chromium(session)
    session.install("-r", "requirements-test.txt")
    _vendor(session)
    session.run("pytest", "tests/e2e", "-q", *session.posargs, env={"COPLAY_CHROMIUM": CHROMIUM})


@nox.session
def export(session: nox.Session) -> None:
    """Export an experiment's data: nox -s export -- EXPERIMENT [--database ...] [--out exports]."""
    session.install("-r", "requirements.txt")
    session.run("python", "-m", "server.export", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, baselines side by side in the same run."""
    _ensure_chromium(session)
    session.install("-r", "requirements-bench.txt")
    _vendor(session)
    session.run("python", "-m", "bench.run", *session.posargs, env={"COPLAY_CHROMIUM": CHROMIUM})
