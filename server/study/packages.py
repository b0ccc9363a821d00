"""Reads the package list researchers edit (pyscript.toml) and resolves every entry to
a URL the worker may install from: a wheel on our own origin, or — only when
``allow_cdn = true`` — a Pyodide package on the official Pyodide CDN."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger("coplay.packages")

PKG_ROUTE = "/pkgs/"
CDN_TEMPLATE = "https://cdn.jsdelivr.net/pyodide/v{version}/full/"


class PackageConfigError(ValueError):
    pass


class PackageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packages: list[str] = []
    allow_cdn: bool = False


def load_package_config(path: Path) -> PackageConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PackageConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PackageConfigError(f"{path}: invalid TOML: {exc}") from None
    try:
        return PackageConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PackageConfigError(f"{path}: {problems}") from None


def is_local(spec: str) -> bool:
    return spec.startswith(("./", "../", "/")) or spec.endswith(".whl") and "://" not in spec


def _closure(name: str, lock: dict) -> list[dict]:
    """A Pyodide package and everything it depends on, dependencies first."""
    order: list[dict] = []
    seen: set[str] = set()

    def visit(pkg: str) -> None:
        key = pkg.lower()
        if key in seen:
            return
        seen.add(key)
        info = lock["packages"][key]
        for dep in info.get("depends", []):
            visit(dep)
        order.append(info)

    visit(name)
    return order


class ResolvedPackages(BaseModel):
    """What the page sends in INSTALL_PACKAGES, and which local files the server serves."""

    entries: list[dict]
    local_files: dict[str, Path]


def resolve_packages(config: PackageConfig, toml_path: Path, pyodide_lock: dict | None) -> ResolvedPackages:
    base = toml_path.parent.resolve()
    entries: list[dict] = []
    local: dict[str, Path] = {}
    lock_pkgs = (pyodide_lock or {}).get("packages", {})
    version = (pyodide_lock or {}).get("info", {}).get("version", "")
    for spec in config.packages:
        if is_local(spec):
            path = (base / spec).resolve()
            if not path.is_file():
                raise PackageConfigError(f"{toml_path}: package {spec!r} not found at {path}")
            if not path.name.endswith(".whl"):
                raise PackageConfigError(f"{toml_path}: package {spec!r} is not a wheel (.whl)")
            rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
            local[rel] = path
            entries.append({"name": path.name.split("-")[0], "url": PKG_ROUTE + rel})
        elif "://" in spec:
            if not config.allow_cdn:
                raise PackageConfigError(
                    f"{toml_path}: {spec!r} is a remote URL; the browser loads nothing from other "
                    "hosts unless allow_cdn = true")
            entries.append({"name": spec.rsplit("/", 1)[-1].split("-")[0], "url": spec})
        elif config.allow_cdn and spec.lower() in lock_pkgs:
            cdn = CDN_TEMPLATE.format(version=version)
            for info in _closure(spec, {"packages": lock_pkgs}):
                if info["name"] == "micropip":
                    continue
                entries.append({"name": info["name"], "url": cdn + info["file_name"]})
        else:
            if spec.lower() in lock_pkgs:
                reason = (f"{spec!r} is a Pyodide package that is not vendored; set allow_cdn = true in "
                          "pyscript.toml to fetch it from the official Pyodide CDN, or list its wheel file")
            else:
                reason = (f"{spec!r} is not a vendored package or a wheel path; put its pure-Python wheel "
                          "next to pyscript.toml and list it as './wheels/<file>.whl'")
            entries.append({"name": spec, "url": None, "reason": reason})
    return ResolvedPackages(entries=entries, local_files=local)


def read_pyodide_lock(vendor_dir: Path) -> dict | None:
    path = vendor_dir / "pyodide" / "pyodide-lock.json"
    return json.loads(path.read_text()) if path.exists() else None


class PackageSource:
    """pyscript.toml as it is now: re-read whenever the file changes, so a researcher who
    edits the package list only has to reload the page."""

    def __init__(self, toml_path: Path, vendor_dir: Path):
        self.path = toml_path
        self.lock = read_pyodide_lock(vendor_dir)
        self._key: tuple[int, int] | None = None
        self._resolved: ResolvedPackages | None = None

    def current(self) -> ResolvedPackages:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise PackageConfigError(f"{self.path}: file not found") from None
        key = (stat.st_mtime_ns, stat.st_size)
        if key != self._key or self._resolved is None:
            self._resolved = resolve_packages(load_package_config(self.path), self.path, self.lock)
            self._key = key
            for entry in self._resolved.entries:
                if entry["url"] is None:
                    log.warning("%s: %s", self.path.name, entry["reason"])
        return self._resolved
