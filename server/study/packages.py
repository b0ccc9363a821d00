"""Reads the package lists researchers edit (the server's pyscript.toml, and an
experiment folder's own) and resolves every entry to a URL the worker may install from:
a wheel on our own origin, a Pyodide package from a local Pyodide release folder
(``pyodide_packages_dir``, also served from our origin, hashes checked against its lock
file), or — only when ``allow_cdn = true`` — a Pyodide package on the official CDN."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from server.vendor import sha256_of

log = logging.getLogger("coplay.packages")

PKG_ROUTE = "/pkgs/"
CDN_TEMPLATE = "https://cdn.jsdelivr.net/pyodide/v{version}/full/"


class PackageConfigError(ValueError):
    pass


class PackageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packages: list[str] = []
    allow_cdn: bool = False
    # a folder (relative to the toml file) holding a Pyodide release's package files and
    # its pyodide-lock.json: bare names like "numpy" resolve there, served from our origin
    pyodide_packages_dir: str | None = None


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


def dist_name(name: str) -> str:
    """A distribution name compared the way pip does (case, '-', '_', '.' alike)."""
    return name.lower().replace("-", "_").replace(".", "_")


class ResolvedPackages(BaseModel):
    """What the page sends in INSTALL_PACKAGES, which local files the server serves (by
    the path after /pkgs/), and which wheel files the env installs (by distribution name,
    in install order: the server's replay imports the pure-Python ones)."""

    entries: list[dict]
    local_files: dict[str, Path]
    wheels: dict[str, Path] = {}

    def merged(self, own: ResolvedPackages) -> ResolvedPackages:
        """These packages plus an experiment's own; a package both list is the experiment's."""
        names = {dist_name(e["name"]) for e in own.entries}
        entries = [e for e in self.entries if dist_name(e["name"]) not in names] + own.entries
        wheels = {k: v for k, v in self.wheels.items() if k not in names} | own.wheels
        return ResolvedPackages(entries=entries, local_files={**self.local_files, **own.local_files},
                                wheels=wheels)


class PyodideRelease(BaseModel):
    """A local folder with a Pyodide release's package files and their lock file."""

    folder: Path
    lock: dict[str, Any]

    @property
    def packages(self) -> dict[str, dict]:
        return self.lock.get("packages", {})


def load_pyodide_release(config: PackageConfig, toml_path: Path,
                         vendored_lock: dict | None) -> PyodideRelease | None:
    if config.pyodide_packages_dir is None:
        return None
    folder = (toml_path.parent / config.pyodide_packages_dir).resolve()
    lock_path = folder / "pyodide-lock.json"
    where = f"{toml_path}: pyodide_packages_dir:"
    try:
        lock = json.loads(lock_path.read_text())
    except FileNotFoundError:
        raise PackageConfigError(f"{where} no pyodide-lock.json in {folder}") from None
    except json.JSONDecodeError as exc:
        raise PackageConfigError(f"{where} {lock_path} is not JSON: {exc}") from None
    if not isinstance(lock.get("packages"), dict):
        raise PackageConfigError(f"{where} {lock_path} has no 'packages' table")
    # compiled packages only load in the Pyodide (ABI) they were built for
    ours, theirs = (vendored_lock or {}).get("info", {}), lock.get("info", {})
    for key in ("abi_version", "version"):
        if ours.get(key) and theirs.get(key) and ours[key] != theirs[key]:
            raise PackageConfigError(
                f"{toml_path}: pyodide_packages_dir: {lock_path} is for Pyodide {key} {theirs[key]!r}, "
                f"the vendored runtime is {ours[key]!r}; use the release matching the vendored Pyodide")
    return PyodideRelease(folder=folder, lock=lock)


def _release_files(release: PyodideRelease, spec: str, toml_path: Path) -> list[tuple[dict, Path]]:
    """A Pyodide package of the release folder and its dependencies, each file checked
    against the lock's sha256 (a truncated or swapped file fails here, not in a browser)."""
    found = []
    for info in _closure(spec, release.lock):
        if info["name"] == "micropip":  # vendored with the runtime
            continue
        path = release.folder / info["file_name"]
        if not path.is_file():
            raise PackageConfigError(f"{toml_path}: pyodide_packages_dir: {info['name']!r} needs {path}, "
                                     "which is missing")
        expected = info.get("sha256")
        if not expected:
            raise PackageConfigError(f"{toml_path}: pyodide_packages_dir: the lock file gives no sha256 "
                                     f"for {info['file_name']}")
        if sha256_of(path) != expected:
            raise PackageConfigError(f"{toml_path}: pyodide_packages_dir: {path} does not match the "
                                     f"sha256 in {release.folder / 'pyodide-lock.json'}")
        found.append((info, path))
    return found


def resolve_packages(config: PackageConfig, toml_path: Path, pyodide_lock: dict | None,
                     prefix: str = "") -> ResolvedPackages:
    """Every entry of one pyscript.toml. ``prefix`` keeps one experiment's files apart from
    another's under /pkgs/ (``x/<experiment>/``)."""
    base = toml_path.parent.resolve()
    entries: list[dict] = []
    local: dict[str, Path] = {}
    wheels: dict[str, Path] = {}
    listed: set[str] = set()  # dependency closures overlap: each package once
    lock_pkgs = (pyodide_lock or {}).get("packages", {})
    version = (pyodide_lock or {}).get("info", {}).get("version", "")
    release = load_pyodide_release(config, toml_path, pyodide_lock)

    def add(name: str, url: str | None, path: Path | None = None, **extra: Any) -> None:
        if dist_name(name) in listed:
            return
        listed.add(dist_name(name))
        entries.append({"name": name, "url": url, **extra})
        if path is not None and path.name.endswith(".whl"):
            wheels[dist_name(name)] = path

    for spec in config.packages:
        if is_local(spec):
            path = (base / spec).resolve()
            if not path.is_file():
                raise PackageConfigError(f"{toml_path}: package {spec!r} not found at {path}")
            if not path.name.endswith(".whl"):
                raise PackageConfigError(f"{toml_path}: package {spec!r} is not a wheel (.whl)")
            rel = prefix + (path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name)
            local[rel] = path
            add(path.name.split("-")[0], PKG_ROUTE + rel, path)
        elif "://" in spec:
            if not config.allow_cdn:
                raise PackageConfigError(
                    f"{toml_path}: {spec!r} is a remote URL; the browser loads nothing from other "
                    "hosts unless allow_cdn = true")
            add(spec.rsplit("/", 1)[-1].split("-")[0], spec)
        elif release is not None and spec.lower() in release.packages:
            for info, path in _release_files(release, spec, toml_path):
                rel = f"{prefix}pyodide/{info['file_name']}"
                local[rel] = path
                add(info["name"], PKG_ROUTE + rel, path)
        elif config.allow_cdn and spec.lower() in lock_pkgs:
            cdn = CDN_TEMPLATE.format(version=version)
            for info in _closure(spec, {"packages": lock_pkgs}):
                if info["name"] == "micropip":
                    continue
                add(info["name"], cdn + info["file_name"])
        else:
            if release is not None:
                reason = (f"{spec!r} is not in {release.folder / 'pyodide-lock.json'} (pyodide_packages_dir) "
                          "and is not a wheel path")
            elif spec.lower() in lock_pkgs:
                reason = (f"{spec!r} is a Pyodide package that is not vendored; set pyodide_packages_dir "
                          "to a local Pyodide release folder, or allow_cdn = true to fetch it from the "
                          "official Pyodide CDN, or list its wheel file")
            else:
                reason = (f"{spec!r} is not a vendored package or a wheel path; put its pure-Python wheel "
                          "next to pyscript.toml and list it as './wheels/<file>.whl'")
            add(spec, None, reason=reason)
    return ResolvedPackages(entries=entries, local_files=local, wheels=wheels)


def read_pyodide_lock(vendor_dir: Path) -> dict | None:
    path = vendor_dir / "pyodide" / "pyodide-lock.json"
    if not path.exists():
        return None
    lock = json.loads(path.read_text())
    info = lock.setdefault("info", {})
    if not info.get("version"):  # newer lock files leave the release out: the vendored one's
        from server.vendor import versions

        info["version"] = versions().get("pyodide", "")
    return lock


def _stat_key(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise PackageConfigError(f"{path}: file not found") from None
    return stat.st_mtime_ns, stat.st_size


class PackageSource:
    """pyscript.toml as it is now: re-read whenever the file changes, so a researcher who
    edits the package list only has to reload the page. An experiment folder may hold its
    own pyscript.toml, whose packages are added for that experiment alone."""

    def __init__(self, toml_path: Path, vendor_dir: Path):
        self.path = toml_path
        self.lock = read_pyodide_lock(vendor_dir)
        self._key: tuple[int, int] | None = None
        self._resolved: ResolvedPackages | None = None
        self._generation = 0  # bumped whenever the global list is re-read
        self._own: dict[str, tuple[tuple, ResolvedPackages]] = {}

    def current(self) -> ResolvedPackages:
        key = _stat_key(self.path)
        if key != self._key or self._resolved is None:
            self._resolved = resolve_packages(load_package_config(self.path), self.path, self.lock)
            self._key = key
            self._generation += 1
            _warn_unresolved(self.path, self._resolved)
        return self._resolved

    def for_experiment(self, exp: Any) -> ResolvedPackages:
        """The global packages plus those of ``exp.directory/pyscript.toml`` (if any), whose
        wheel paths are relative to that file and served under /pkgs/x/<experiment>/."""
        base = self.current()
        own_path = Path(exp.directory) / "pyscript.toml"
        if not own_path.exists():
            return base
        key = (self._generation, _stat_key(own_path))
        cached = self._own.get(exp.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        own = resolve_packages(load_package_config(own_path), own_path, self.lock, prefix=f"x/{exp.name}/")
        _warn_unresolved(own_path, own)
        merged = base.merged(own)
        self._own[exp.name] = (key, merged)
        return merged


def _warn_unresolved(path: Path, resolved: ResolvedPackages) -> None:
    for entry in resolved.entries:
        if entry["url"] is None:
            log.warning("%s: %s", path, entry["reason"])
