"""Starts the real Coplay server (app.py) as a subprocess on 127.0.0.1."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pilot.local import ROOT, free_port, launch


@dataclass
class RunningServer:
    url: str
    port: int
    database: Path | str  # the SQLite file, or the postgresql:// URL it was started with
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, sql: str, *args) -> list[tuple]:
        if "://" in str(self.database):
            from tests.postgres import query_url

            return query_url(str(self.database), sql, *args)
        with sqlite3.connect(self.database) as conn:
            return conn.execute(sql, args).fetchall()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(workdir: Path, *, experiments_dir: Path | None = None, pyscript_toml: Path | None = None,
                 extra_args: list[str] | None = None, wait: float = 30.0,
                 env: dict[str, str] | None = None, port: int | None = None,
                 database: Path | str | None = None) -> RunningServer:
    port = port or free_port()
    database = database or workdir / "coplay.sqlite"
    log_path = workdir / f"server-{port}.log"
    args = ["--port", str(port), "--database", str(database)]
    if experiments_dir is not None:
        args += ["--experiments-dir", str(experiments_dir)]
    if pyscript_toml is not None:
        args += ["--pyscript-toml", str(pyscript_toml)]
    args += extra_args or []
    proc = launch(args, log_path, env, wait)
    return RunningServer(f"http://127.0.0.1:{port}", port, database, proc, log_path)


KITCHEN_CONTROLS = {"ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right",
                    " ": "interact"}


def write_kitchen(directory: Path, **fields) -> Path:
    """A two-player kitchen experiment (the example env) with test-friendly defaults."""
    settings = {"players": ["p0", "p1"], "start_key": "Enter", "default_action": "noop",
                "controls": KITCHEN_CONTROLS, "multiplayer": {"network_from_url": True}}
    settings.update(fields)
    source = (ROOT / "experiments" / "kitchen" / "env.py").read_text()
    return write_experiment(directory, "kitchen", env_source=source, **settings)


def write_experiment(directory: Path, name: str, env_source: str | None = None, **fields) -> Path:
    """An experiment folder for tests; by default it reuses the example catch env."""
    exp_dir = directory / name
    exp_dir.mkdir(parents=True, exist_ok=True)
    if env_source is None:
        env_path = ROOT / "experiments" / "catch" / "env.py"
    else:
        env_path = exp_dir / "env.py"
        env_path.write_text(env_source)
    definition = {
        "name": name,
        "env": str(env_path),
        "controls": {"ArrowLeft": "left", "ArrowRight": "right"},
        "default_action": "noop",
        **fields,
    }
    (exp_dir / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    return exp_dir
