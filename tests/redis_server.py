"""A real, throwaway Redis server for the multi-process tests and benchmarks: Debian's
``redis-server`` on a free 127.0.0.1 port, no persistence, stopped at the end.
A missing binary is an error, never a skip: ``nox -s tests`` installs ``redis-server``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from tests.servers import free_port


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def start_redis(wait: float = 10.0) -> RedisServer:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not shutil.which(binary):
        raise RuntimeError("redis-server is missing: install Debian's redis-server (nox -s tests does)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return RedisServer(f"redis://127.0.0.1:{port}/0", proc)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not answer on port {port} within {wait}s")
