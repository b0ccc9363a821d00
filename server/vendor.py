"""Fetch the pinned browser runtime (PyScript, Pyodide, MicroPython, socket.io-client,
micropip), verify it against vendor.lock.json and lay it out for Quart to serve.

Idempotent: downloads are cached outside the repository (``$COPLAY_CACHE`` or
``~/.cache/coplay``), and the laid-out tree carries a stamp of the lock it came from.
Run as ``python -m server.vendor``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_PATH = ROOT / "vendor.lock.json"
DEFAULT_VENDOR_DIR = ROOT / "vendor"
STAMP = ".vendor-stamp"


class VendorError(RuntimeError):
    """Vendoring cannot produce a trustworthy tree; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("COPLAY_CACHE", Path.home() / ".cache" / "coplay"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_lock(path: Path = LOCK_PATH) -> dict:
    return json.loads(path.read_text())


def lock_digest(lock: dict) -> str:
    return hashlib.sha256(json.dumps(lock, sort_keys=True).encode()).hexdigest()


def verify(path: Path, expected: str, what: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise VendorError(
            f"{what}: sha256 mismatch for {path.name}\n  expected {expected}\n  actual   {actual}\n"
            f"The registry artifact differs from vendor.lock.json; delete {path} to retry, "
            "or update the lock deliberately."
        )


def _npm_tarball_name(name: str, version: str) -> str:
    # `npm pack @scope/pkg@v` writes scope-pkg-v.tgz
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def _download(entry: dict, target: Path, command: list[str], what: str) -> Path:
    """Run `command` to put the registry artifact at `target` (unless cached), then check it."""
    if not target.exists():
        print(f"vendor: {what}", flush=True)
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0 or not target.exists():
            raise VendorError(f"{what} failed:\n{proc.stderr.strip()}")
    verify(target, entry["sha256"], entry["name"])
    return target


def fetch_npm(entry: dict, cache: Path) -> Path:
    target = cache / _npm_tarball_name(entry["name"], entry["version"])
    if not target.exists() and shutil.which("npm") is None:
        raise VendorError("npm is needed to vendor the browser runtime; install Node.js/npm")
    spec = f"{entry['name']}@{entry['version']}"
    return _download(entry, target, ["npm", "pack", spec, "--pack-destination", str(cache), "--silent"],
                     f"npm pack {spec}")


def fetch_pypi(entry: dict, cache: Path) -> Path:
    spec = f"{entry['name']}=={entry['version']}"
    # Pyodide's Python is newer than the host's; ask for any pure-Python wheel.
    command = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary=:all:",
               "--python-version", "3.13", "-d", str(cache), "-q"]
    return _download(entry, cache / entry["file"], command, f"pip download {spec}")


def extract_npm(tarball: Path, mapping: dict[str, str], dest: Path) -> None:
    with tarfile.open(tarball) as tar:
        members = tar.getmembers()
        for src, dst in mapping.items():
            chosen = [
                m for m in members
                if m.isfile() and (m.name == src or (src.endswith("/") and m.name.startswith(src)))
            ]
            # Source maps are only fetched by devtools; leave them out.
            chosen = [m for m in chosen if not m.name.endswith(".map")]
            if not chosen:
                raise VendorError(f"{tarball.name}: {src} not found in the package")
            for member in chosen:
                rel = dst + member.name[len(src):] if src.endswith("/") else dst
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as fh, out.open("wb") as w:  # type: ignore[union-attr]
                    shutil.copyfileobj(fh, w)


def patch_pyodide_lock(dest: Path, key: str, wheel_sha256: str) -> None:
    """PyPI's micropip wheel is not byte-identical to the one Pyodide's lock names, so
    Pyodide would refuse it; record the hash of the wheel we actually serve."""
    lock_file = dest / "pyodide" / "pyodide-lock.json"
    data = json.loads(lock_file.read_text())
    if key not in data["packages"]:
        raise VendorError(f"pyodide-lock.json has no package {key!r}")
    data["packages"][key]["sha256"] = wheel_sha256
    lock_file.write_text(json.dumps(data))


def is_current(dest: Path, lock: dict) -> bool:
    stamp = dest / STAMP
    return stamp.exists() and stamp.read_text().strip() == lock_digest(lock)


def vendor(dest: Path = DEFAULT_VENDOR_DIR, lock: dict | None = None, cache: Path | None = None) -> Path:
    lock = lock if lock is not None else load_lock()
    if is_current(dest, lock):
        return dest
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".vendor-", dir=dest.parent))
    try:
        for entry in lock["npm"]:
            extract_npm(fetch_npm(entry, cache), entry["extract"], staging)
        for entry in lock["pypi"]:
            wheel = fetch_pypi(entry, cache)
            out = staging / entry["dest"]
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wheel, out)
            if entry.get("pyodide_lock_key"):
                patch_pyodide_lock(staging, entry["pyodide_lock_key"], entry["sha256"])
        (staging / STAMP).write_text(lock_digest(lock))
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"vendor: runtime ready in {dest}", flush=True)
    return dest


def versions(lock: dict | None = None) -> dict[str, str]:
    lock = lock if lock is not None else load_lock()
    return {e["name"]: e["version"] for e in lock["npm"] + lock["pypi"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dest", type=Path, default=DEFAULT_VENDOR_DIR)
    args = parser.parse_args(argv)
    try:
        vendor(args.dest)
    except VendorError as exc:
        print(f"vendor: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
