"""INSTALL_PACKAGES inside Pyodide: wheels listed in pyscript.toml, installed with the
vendored micropip, never from PyPI. The server has already resolved every entry to a
URL on its own origin (or the Pyodide CDN when the researcher opted in); an entry
without a URL carries the reason it cannot be installed."""

import importlib.metadata


class PackageInstallError(Exception):
    pass


def _requirement_name(req):
    for i, ch in enumerate(req):
        if ch in " ;<>=!~[(":
            return req[:i]
    return req


def _dist_name(pkg):
    # wheel file names are name-version-...; names given bare are already names
    url = pkg.get("url") or ""
    base = url.rsplit("/", 1)[-1]
    return base.split("-")[0] if base.endswith(".whl") else pkg["name"]


def missing_dependencies(dist_names):
    """Requirements of the installed wheels that nothing installed satisfies.
    (Environment-marker requirements are skipped: they rarely apply in Pyodide.)"""
    missing = []
    for dist in dist_names:
        for req in importlib.metadata.requires(dist) or []:
            if ";" in req:
                continue
            name = _requirement_name(req.strip())
            try:
                importlib.metadata.distribution(name)
            except importlib.metadata.PackageNotFoundError:
                missing.append(dist + " needs " + name)
    return missing


def absolute_url(url, origin):
    # fetch() in a (blob-URL) worker cannot resolve site-relative paths itself
    return origin + url if url.startswith("/") else url


async def install_packages(packages, options, progress):
    import js
    import pyodide_js

    total = len(packages)
    progress("installing", "Loading the package installer…", 0.0)
    await pyodide_js.loadPackage("micropip")
    import micropip

    installed = []
    for index, pkg in enumerate(packages):
        name = pkg["name"]
        progress("installing", "Installing " + name + " (" + str(index + 1) + "/" + str(total) + ")…",
                 index / total)
        if not pkg.get("url"):
            raise PackageInstallError("cannot install " + repr(name) + ": " + pkg.get("reason", "no URL"))
        try:
            # deps=False: a dependency must be listed (and vendored) too, or micropip
            # would go looking for it on PyPI; we check below and say which is missing.
            await micropip.install(absolute_url(pkg["url"], str(js.location.origin)), deps=False)
        except Exception as exc:
            raise PackageInstallError("could not install " + repr(name) + " from " + pkg["url"]
                                      + ": " + str(exc)) from None
        installed.append(name)
    missing = missing_dependencies([_dist_name(p) for p in packages])
    if missing:
        raise PackageInstallError("missing dependencies (add their wheels to pyscript.toml): "
                                  + ", ".join(missing))
    importlib.invalidate_caches()
    progress("installing", "Packages installed", 1.0)
    return installed
