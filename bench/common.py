"""Shared helpers for the benchmarks: statistics, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from pathlib import Path

from pilot.report import percentile, summary
from tests.e2e.browser import CHROMIUM

__all__ = ["machine", "percentile", "runs_summary", "summary"]


def runs_summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 1), "runs": [round(v, 1) for v in values]}


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    browser = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(),
            "python": platform.python_version(), "browser": browser}


def delivery(sent: int, arrived: int, refused: int) -> dict:
    """What became of the ``sent`` messages whose latency a figure reports, to sit beside it:
    ``arrived`` (the ones measured), ``refused`` by the server (a server_error or an error
    ack) and ``lost`` (neither: never arrived). A latency is only honest beside these."""
    return {"sent": sent, "arrived": arrived, "refused": refused, "lost": sent - arrived - refused}


def add_delivery(counts: list[dict]) -> dict:
    """Several `delivery` counts summed (trials, windows)."""
    return {key: sum(c[key] for c in counts) for key in ("sent", "arrived", "refused", "lost")}
