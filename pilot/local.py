"""A Coplay server process of its own (app.py) on 127.0.0.1, for a pilot without --url
(and for the tests, tests/servers.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerRefused(RuntimeError):
    """The server exited at startup; ``reason`` is what it said (for an experiment it refuses,
    the config error naming the file and field)."""

    def __init__(self, code: int, log: str):
        super().__init__(f"server exited with {code}:\n{log}")
        said = log.split("cannot start:", 1)[1] if "cannot start:" in log else log
        self.reason = " ".join(line.strip() for line in said.strip().splitlines()[-5:])


def launch(
    args: list[str], log_path: Path, env: dict[str, str] | None = None, wait: float = 30.0
) -> subprocess.Popen:
    """Start ``python app.py ARGS`` (it must include --port) and wait until /healthz answers;
    its output goes to ``log_path``. A server that exits or stays silent raises, with its log."""
    port = args[args.index("--port") + 1]
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=ROOT,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerRefused(proc.returncode, log_path.read_text())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not answer within {wait}s:\n{log_path.read_text()}")
