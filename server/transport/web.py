"""HTTP side: the experiment page, PyScript configs, our Python sources for the
browser, the vendored runtime and the researcher's wheels. Every response carries
COOP/COEP so the page is cross-origin isolated (precise timers, SharedArrayBuffer)."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from quart import Quart, Response, abort, current_app, redirect, render_template, request, send_file

from server.settings import ROOT
from server.study.experiment import Experiment
from server.study.games import games_config
from server.study.packages import PKG_ROUTE, PackageConfigError, PackageSource, ResolvedPackages
from server.study.screening import page_rules

for _ext, _type in {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                    ".toml": "application/toml", ".whl": "application/zip", ".py": "text/x-python",
                    ".zip": "application/zip", ".json": "application/json"}.items():
    mimetypes.add_type(_type, _ext)

# Directories whose .py files the browser loads: main thread (MicroPython) and worker (Pyodide).
MAIN_THREAD_SOURCES = ("protocol", "pages")
WORKER_SOURCES = ("protocol", "worker")
SOURCE_DIRS = {"protocol", "pages", "worker"}
VENDOR_ROUTE = "/vendor/v/"


def _files_table(dirs: tuple[str, ...]) -> str:
    lines = ["[files]"]
    for d in dirs:
        for path in sorted((ROOT / d).glob("*.py")):
            lines.append(f'"/src/{d}/{path.name}" = "./{d}/{path.name}"')
    return "\n".join(lines)


ORT_DIR = "onnxruntime/"  # onnxruntime-web, vendored (vendor.lock.json)


def pyscript_configs(vendor_prefix: str) -> dict[str, str]:
    # interpreter set explicitly: PyScript would otherwise fetch it from a CDN.
    worker = f'interpreter = "{vendor_prefix}pyodide/pyodide.mjs"\n' + _files_table(WORKER_SOURCES) + "\n"
    # pages seating an ONNX policy load onnxruntime-web as the JS module `ort`, in the env's
    # worker (or on the main thread in the ?worker=0 baseline), and no other page does
    ort = f'"{vendor_prefix}{ORT_DIR}ort.wasm.min.mjs" = "ort"\n'
    return {
        "mpy": f'interpreter = "{vendor_prefix}micropython/micropython.mjs"\n'
               + _files_table(MAIN_THREAD_SOURCES) + "\n",
        "worker": worker,
        "worker-onnx": worker + "\n[js_modules.worker]\n" + ort,
        "main-onnx": worker + "\n[js_modules.main]\n" + ort,
        "clock": f'interpreter = "{vendor_prefix}micropython/micropython.mjs"\n',
    }


def worker_config_name(exp: Experiment, worker: bool) -> str:
    if not exp.uses_onnx:
        return "worker"
    return "worker-onnx" if worker else "main-onnx"


def client_config(exp: Experiment, packages: ResolvedPackages, worker: bool, vendor_prefix: str = "") -> dict:
    """Everything the page needs, embedded in the page itself (one request fewer). The
    games are those of the experiment's own path; the server's hello replaces them with
    the participant's condition's when the experiment has conditions."""
    multiplayer = [g for g in exp.games.values() if g.is_multiplayer]
    return {
        "experiment": exp.name,
        "title": exp.title or exp.name,
        "upload_every": exp.upload_every,
        "seed": exp.seed,
        "canvas": list(exp.canvas),
        "games": games_config(exp, None, packages),
        "timeouts_ms": {k.upper(): int(v * 1000) for k, v in exp.timeouts.model_dump().items()},
        "worker": worker,
        "asset_base": f"/x/{exp.name}/assets/",
        # snapshots kept by the worker: enough for the largest rollback window of any game
        "ring_size": max([g.multiplayer.max_prediction + g.multiplayer.input_delay + 6
                          for g in multiplayer], default=9),
        "onnx_wasm": f"{vendor_prefix}{ORT_DIR}" if exp.uses_onnx else None,
        "on_reload": exp.on_reload,
        "screening": page_rules(exp.screening),
    }


def register_routes(app: Quart, experiments: dict[str, Experiment], default: str,
                    packages: PackageSource, vendor_dir: Path, vendor_version: str) -> None:
    vendor_prefix = f"{VENDOR_ROUTE}{vendor_version}/"
    configs = pyscript_configs(vendor_prefix)
    app.config["COPLAY_VENDOR"] = vendor_prefix.rstrip("/")  # for pages served elsewhere (admin)

    @app.after_request
    async def isolation_headers(response: Response) -> Response:
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        response.headers["Cross-Origin-Embedder-Policy"] = "require-corp"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if request.path.startswith(VENDOR_ROUTE):
            # the version is in the path, so the bytes behind a URL never change
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers.setdefault("Cache-Control", "no-cache")
        return response

    @app.get("/")
    async def index():
        return redirect(f"/x/{default}")

    @app.get("/favicon.ico")
    async def favicon():
        return Response(status=204)

    @app.get("/healthz")
    async def healthz():
        lifecycle = current_app.extensions.get("coplay", {}).get("lifecycle")
        if lifecycle is not None and lifecycle.draining:  # a load balancer stops sending newcomers
            return {"ok": False, "draining": True}, 503
        return {"ok": True, "experiments": sorted(experiments)}

    @app.get("/stats")
    async def stats():
        """Counters for the researcher (no personal data): refused events by reason
        (server/transport/limits.py, server/transport/sockets.py), connections, relay totals."""
        coplay = current_app.extensions.get("coplay", {})
        sockets, relay = coplay.get("sockets"), coplay.get("relay")
        return {**(sockets.stats() if sockets else {}), "relay": dict(relay.stats) if relay else {},
                "cluster": relay.cluster_stats() if relay else None}

    def experiment_or_404(name: str) -> Experiment:
        if name not in experiments:
            abort(404)
        return experiments[name]

    @app.get("/x/<name>")
    async def experiment_page(name: str):
        exp = experiment_or_404(name)
        worker = request.args.get("worker", "1") != "0"
        try:
            resolved = packages.for_experiment(exp)
        except PackageConfigError as exc:
            return Response(f"Experiment misconfigured: {exc}", status=500, mimetype="text/plain")
        return await render_template(
            "index.html", title=exp.title or exp.name, vendor=vendor_prefix.rstrip("/"),
            worker=worker, config=client_config(exp, resolved, worker, vendor_prefix),
            clock=exp.is_multiplayer,
            worker_config=worker_config_name(exp, worker),
            canvas_w=exp.canvas[0], canvas_h=exp.canvas[1],
        )

    @app.get("/x/<name>/assets/<path:rel>")
    async def experiment_asset(name: str, rel: str):
        return await _send_within(experiment_or_404(name).directory / "assets", rel)

    @app.get("/x/<name>/files/<path:rel>")
    async def env_file(name: str, rel: str):
        # only the files listed for the worker: never experiment.py (it may hold completion
        # codes), pyscript.toml, wheels or anything outside the experiment folder
        exp = experiment_or_404(name)
        if rel not in {f.path for f in exp.env_files}:
            abort(404)
        return await _send_within(exp.directory, rel)

    @app.get("/config/<kind>.toml")
    async def pyscript_config(kind: str):
        if kind not in configs:
            abort(404)
        return Response(configs[kind], mimetype="application/toml")

    @app.get("/src/<folder>/<filename>")
    async def source(folder: str, filename: str):
        if folder not in SOURCE_DIRS or not filename.endswith((".py", ".css")):
            abort(404)
        return await _send_within(ROOT / folder, filename)

    @app.get(f"{VENDOR_ROUTE}<version>/<path:rel>")
    async def vendored(version: str, rel: str):
        if version != vendor_version:
            abort(404)
        return await _send_within(vendor_dir, rel)

    @app.get(f"{PKG_ROUTE}<path:rel>")
    async def package_wheel(rel: str):
        # only files listed in pyscript.toml are served; an experiment's own list under
        # x/<experiment>/, so two experiments' wheels never clash
        parts = rel.split("/")
        if len(parts) > 2 and parts[0] == "x" and parts[1] in experiments:
            path = packages.for_experiment(experiments[parts[1]]).local_files.get(rel)
        else:
            path = packages.current().local_files.get(rel)
        if path is None:
            abort(404)
        return await send_file(path, mimetype="application/zip")


async def _send_within(base: Path, rel: str):
    base = base.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        abort(404)
    return await send_file(path)
