"""Researcher-only routes, behind a bearer token from the environment: download an
experiment's export (CSV + Parquet + manifest) as a zip. Without a configured token the
routes answer 404, so participants cannot even find them."""

from __future__ import annotations

import asyncio
import hmac
import io
import tempfile
import zipfile
from pathlib import Path

from quart import Quart, Response, abort, request

from server.experiment import Experiment
from server.export import export


def _authorized(token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())


def _zip_export(database: Path, exp: Experiment) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / exp.name
        export(database, exp, out)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(out.iterdir()):
                zf.write(path, f"{exp.name}/{path.name}")
        return buffer.getvalue()


def register_admin(app: Quart, experiments: dict[str, Experiment], database: Path, token: str | None) -> None:
    @app.get("/admin/export/<name>.zip")
    async def download_export(name: str):
        if token is None:
            abort(404)
        if not _authorized(token):
            return Response("admin token required", status=401,
                            headers={"WWW-Authenticate": 'Bearer realm="coplay-admin"'})
        if name not in experiments:
            abort(404)
        data = await asyncio.to_thread(_zip_export, database, experiments[name])
        return Response(data, mimetype="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}-export.zip"',
                                 "Cache-Control": "no-store"})
