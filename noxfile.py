"""Every command a researcher or CI runs. Each session installs what it needs.

    nox -s serve            start the server with the example experiment
    nox -s tests e2e        all tests (unit + integration, then real-browser e2e)
    nox -s bench            benchmarks -> bench/results.json + bench/results.png
    nox -s pilot -- EXP     simulated participants walk a study; its data is checked
    nox -s lint             ruff
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.sessions = ["tests", "e2e"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

CHROMIUM = os.environ.get("COPLAY_CHROMIUM", "/usr/bin/chromium")
POSTGRES_INITDB = "/usr/lib/postgresql/*/bin/initdb"  # Debian keeps the server binaries off PATH


def _vendor(session: nox.Session) -> None:
    session.run("python", "-m", "server.vendor")


def _ensure_debian(session: nox.Session, binary_path: str, packages: list[str], hint: str = "") -> None:
    """Install Debian packages with apt-get when ``binary_path`` (a path or a glob) is missing."""
    if glob.glob(binary_path):
        return
    if shutil.which("apt-get") is None:
        session.error(f"{binary_path} is missing and apt-get is unavailable: install {' '.join(packages)}"
                      + (f" ({hint})" if hint else ""))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run(*sudo, "apt-get", "update", "-q", external=True, env=env)
    session.run(*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages,
                external=True, env=env)


def _ensure_chromium(session: nox.Session) -> None:
    """Playwright cannot download browsers here: use Debian's chromium."""
    _ensure_debian(session, CHROMIUM, ["chromium", "fonts-dejavu-core"], "or set COPLAY_CHROMIUM")


def _ensure_postgres(session: nox.Session) -> None:
    """The Postgres tests start a real throwaway server (tests/postgres.py): Debian's initdb/pg_ctl."""
    where = os.environ.get("COPLAY_PG_BIN")
    _ensure_debian(session, f"{where}/initdb" if where else POSTGRES_INITDB, ["postgresql"],
                   "or set COPLAY_PG_BIN to the folder holding initdb")


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
    """Lint, unit and integration tests (real server processes, real Socket.IO clients,
    a real throwaway Postgres and Redis, Debian's nginx in front for the deployment test)."""
    _ensure_postgres(session)
    _ensure_debian(session, "/usr/bin/redis-server", ["redis-server"])
    _ensure_debian(session, "/usr/sbin/nginx", ["nginx"])  # the deployment test (deploy/nginx/)
    _ensure_chromium(session)  # the pilot's test seats two of its participants in real pages
    session.install("-r", "requirements-test.txt")
    session.run("ruff", "check", ".")
    _vendor(session)
    session.run("pytest", "tests/unit", "tests/integration", "-q", *session.posargs,
                env={"COPLAY_CHROMIUM": CHROMIUM})


@nox.session
def e2e(session: nox.Session) -> None:
    """Real-browser tests: Chromium through Playwright against real servers."""
    _ensure_chromium(session)
    session.install("-r", "requirements-test.txt")
    _vendor(session)
    session.run("pytest", "tests/e2e", "-q", *session.posargs, env={"COPLAY_CHROMIUM": CHROMIUM})


@nox.session
def pilot(session: nox.Session) -> None:
    """Pilot a study with simulated participants: nox -s pilot -- EXPERIMENT --participants N
    --concurrency C [--url URL] (python -m pilot --help for every option)."""
    if any(arg.startswith("--browsers") for arg in session.posargs):
        _ensure_chromium(session)
    session.install("-r", "requirements-pilot.txt")
    _vendor(session)
    session.run("python", "-m", "pilot", *session.posargs, env={"COPLAY_CHROMIUM": CHROMIUM})


@nox.session
def export(session: nox.Session) -> None:
    """Export an experiment's data: nox -s export -- EXPERIMENT [--database ...] [--out exports]."""
    session.install("-r", "requirements.txt")
    session.run("python", "-m", "server.data.export", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, baselines side by side in the same run."""
    _ensure_chromium(session)
    _ensure_postgres(session)
    _ensure_debian(session, "/usr/bin/redis-server", ["redis-server"])
    session.install("-r", "requirements-bench.txt")
    _vendor(session)
    session.run("python", "-m", "bench.run", *session.posargs, env={"COPLAY_CHROMIUM": CHROMIUM})
