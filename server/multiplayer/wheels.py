"""The browser's wheels for the server's CPython: the replay and the synctest must import
what micropip installed in the worker, without touching the server's own environment (no
pip install). A pure-Python wheel is a zip of importable files, so each listed wheel is
unpacked once into a folder named after its sha256 and that folder goes on the replay's
search path. A wheel built for a platform (a Pyodide/emscripten build, a CPython
extension) cannot be imported here: it is skipped, and named at startup."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

from server.vendor import sha256_of

log = logging.getLogger("coplay.wheels")

DONE = ".coplay-unpacked"  # written last: a folder without it was interrupted mid-unpack


def wheel_tags(filename: str) -> tuple[set[str], set[str], set[str]]:
    """(python, abi, platform) tag sets of a wheel's file name (PEP 427: name-version
    [-build]-python-abi-platform.whl, each tag possibly a '.'-joined set)."""
    parts = filename.removesuffix(".whl").split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        raise ValueError(f"{filename}: not a wheel file name")
    python, abi, platform = parts[-3:]
    return set(python.split(".")), set(abi.split(".")), set(platform.split("."))


def unusable_reason(path: Path) -> str | None:
    """Why CPython cannot import this wheel (None if it can: py3-none-any, py2.py3-none-any)."""
    try:
        python, abi, platform = wheel_tags(path.name)
    except ValueError as exc:
        return str(exc)
    if "any" in platform and "none" in abi and any(tag.startswith("py3") for tag in python):
        return None
    tags = "-".join(".".join(sorted(t)) for t in (python, abi, platform))
    kind = "a Pyodide (emscripten/wasm32) build" if any(
        "emscripten" in p or "pyodide" in p or "wasm" in p for p in platform) else "platform-specific"
    return f"{path.name} is {kind} ({tags}), not pure Python (py3-none-any)"


class WheelCache:
    """Unpacked wheels under ``root``, one folder per file content (sha256): a wheel
    replaced under the same name gets a new folder, and processes sharing the cache
    never see a half-written one (unpacked into a temporary folder, then renamed)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._known: dict[tuple[str, int, int], Path] = {}  # (path, mtime, size) -> folder

    def folder(self, wheel: Path) -> Path:
        stat = wheel.stat()
        key = (str(wheel), stat.st_mtime_ns, stat.st_size)
        known = self._known.get(key)
        if known is not None and (known / DONE).exists():
            return known
        target = self.root / sha256_of(wheel)[:32]
        if not (target / DONE).exists():
            self._unpack(wheel, target)
        self._known[key] = target
        return target

    def _unpack(self, wheel: Path, target: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
        try:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(scratch)  # extractall drops absolute paths and '..' parts
            (scratch / DONE).write_text(wheel.name + "\n")
            if target.exists():  # an interrupted earlier attempt
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.rename(scratch, target)
            except OSError:
                if not (target / DONE).exists():  # not another process that won the race
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def search_path(self, wheels: Iterable[Path]) -> list[str]:
        """The folders to import the usable wheels from, in the listed order."""
        return [str(self.folder(w)) for w in wheels if unusable_reason(w) is None]


def unusable(wheels: Iterable[Path]) -> list[str]:
    """One reason per listed wheel the replay has to go without."""
    return [reason for w in wheels if (reason := unusable_reason(w)) is not None]


def warn_unusable(where: str, wheels: Iterable[Path]) -> list[str]:
    """Log (once, at startup) every listed wheel CPython cannot import: the replay runs
    without it, and a room whose env needs it ends ``replay_error``."""
    reasons = unusable(wheels)
    for reason in reasons:
        log.warning("%s: %s; the server's CPython replay runs without it (install a CPython build "
                    "of it into the server's environment, or rooms whose env imports it end "
                    "'replay_error')", where, reason)
    return reasons
