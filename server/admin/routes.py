"""Researcher-only routes: a login page, a dashboard of experiments with counts, and the
export download (CSV + Parquet + manifest as a zip).

Two ways in, both configured through the environment only:
- a password (COPLAY_ADMIN_PASSWORD_HASH, an scrypt hash from `python -m server.admin.password`):
  /admin/login sets a signed session cookie (HttpOnly, SameSite=Strict, path /admin) and every
  POST carries the session's CSRF token; failed logins slow down per client address;
- a bearer token (COPLAY_ADMIN_TOKEN) for scripted downloads: ``Authorization: Bearer <token>``.
With neither configured every /admin route answers 404, so participants cannot even find them.
Admin responses are never cached (Cache-Control: no-store)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import logging
import secrets
import statistics
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from quart import Quart, Response, abort, redirect, render_template, request, session
from quart.sessions import SecureCookieSessionInterface
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from server.admin.password import MAX_PASSWORD, parse_hash, verify_password
from server.data.export import export
from server.data.storage import create_engine, is_url
from server.study.experiment import Experiment

log = logging.getLogger("coplay.admin")

SESSION_LIFETIME = timedelta(hours=8)
COOKIE_NAME = "coplay_admin"
STRICT_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
# admin pages that run Python in the browser (PyScript: MicroPython's WebAssembly, the vendored
# runtime and Socket.IO, all from this origin)
APP_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval';"
           " style-src 'self' 'unsafe-inline'; connect-src 'self'; worker-src 'self' blob:;"
           " img-src 'self' data: blob:; form-action 'self'; frame-ancestors 'none'")
PAGE_CSP = {"/admin/monitor": APP_CSP}
CSRF_FIELD = "csrf_token"


def _bearer_ok(token: str | None) -> bool:
    if token is None:
        return False
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


def require_admin(app: Quart) -> AdminAccess:
    """The admin check for researcher-only routes registered elsewhere (server/replay_viewer/)."""
    return app.extensions["coplay_admin"]


class LoginThrottle:
    """Per-client failed-login counter: the first `free` failures cost nothing, then each
    further one locks that client out for base * 2**k seconds (at most `cap`). In-process only."""

    def __init__(self, free: int = 5, base: float = 1.0, cap: float = 900.0, clock=time.monotonic):
        self.free, self.base, self.cap, self.clock = free, base, cap, clock
        self.failures: dict[str, tuple[int, float]] = {}  # client -> (count, locked until)

    def retry_after(self, client: str) -> float:
        _, until = self.failures.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> None:
        now = self.clock()
        count = self.failures.get(client, (0, 0.0))[0] + 1
        extra = count - self.free
        until = now + min(self.cap, self.base * 2 ** (extra - 1)) if extra > 0 else 0.0
        self.failures[client] = (count, until)
        if len(self.failures) > 10_000:  # forget clients whose lockout is long over
            stale = [c for c, (_, u) in self.failures.items() if u + self.cap < now]
            for c in stale:
                del self.failures[c]

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)


class _AdminCookie(SecureCookieSessionInterface):
    """Marks the cookie Secure whenever the request came over HTTPS (directly or via a proxy)."""

    def get_cookie_secure(self, app: Quart) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        try:
            return request.scheme == "https" or request.headers.get("X-Forwarded-Proto") == "https"
        except RuntimeError:  # outside a request
            return False


COUNT_QUERIES = {
    "episodes": "SELECT experiment, COUNT(*), SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END)"
                " FROM episodes GROUP BY experiment",
    "rooms": "SELECT experiment, COUNT(*), SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END),"
             " SUM(CASE WHEN status = 'replay_error' THEN 1 ELSE 0 END),"
             " SUM(CASE WHEN status = 'desync' THEN 1 ELSE 0 END),"
             " SUM(CASE WHEN status = 'abandoned' THEN 1 ELSE 0 END) FROM rooms GROUP BY experiment",
    "participants": "SELECT experiment, COUNT(*) FROM participants GROUP BY experiment",
    "progress": "SELECT g.experiment, p.condition, g.scene_index, g.outcome, g.updated - p.created"
                " FROM progress g LEFT JOIN participants p ON p.id = g.participant_id",
    "wait_timeouts": "SELECT p.experiment, COUNT(DISTINCT e.participant_id) FROM events e"
                     " JOIN participants p ON p.id = e.participant_id WHERE e.kind = 'wait_timeout'"
                     " GROUP BY p.experiment",
}


async def study_counts(database: Any, experiments: dict[str, Experiment]) -> dict[str, dict[str, int]] | None:
    """`read_counts` on an engine of its own, read-only (the dashboard, on request); None if
    unreadable. A database that does not exist yet counts zeros."""
    if not is_url(database) and not Path(database).exists():
        return _tally({name: [] for name in COUNT_QUERIES}, experiments)
    engine = create_engine(database, readonly=True)
    try:
        async with engine.connect() as conn:
            return await read_counts(conn, experiments)
    except SQLAlchemyError:
        log.exception("admin counts unavailable")
        return None
    finally:
        await engine.dispose()


async def read_counts(conn: AsyncConnection, experiments: dict[str, Experiment]) -> dict[str, dict[str, Any]]:
    """Per experiment: participants, finished (reached the end of their scene list), declined,
    screened out, sent away by the wait timeout, episodes (completed / all), rooms (completed /
    all, how many ended desync or replay_error — unverified because the server's replay could
    not run — and abandoned: a partner dropped out), and the median time from arrival to the
    end for those who finished. Read-only, on a connection of the caller's (SQLite or
    Postgres): the live monitor reads through the store's engine (server/monitor/records.py)."""
    rows = {name: (await conn.execute(text(sql))).all() for name, sql in COUNT_QUERIES.items()}
    return _tally(rows, experiments)


def _tally(rows: dict[str, list], experiments: dict[str, Experiment]) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {
        name: dict.fromkeys(("participants", "finished", "declined", "screened_out", "wait_timeout",
                             "episodes", "episodes_completed", "rooms", "rooms_completed", "rooms_desync",
                             "rooms_replay_error", "rooms_abandoned"), 0)
        for name in experiments}
    for name, n, done in rows["episodes"]:
        if name in counts:
            counts[name]["episodes"], counts[name]["episodes_completed"] = n, done or 0
    for name, n, done, replay_errors, desyncs, abandoned in rows["rooms"]:
        if name in counts:
            counts[name].update(rooms=n, rooms_completed=done or 0, rooms_replay_error=replay_errors or 0,
                                rooms_desync=desyncs or 0, rooms_abandoned=abandoned or 0)
    for name, n in rows["wait_timeouts"]:
        if name in counts:
            counts[name]["wait_timeout"] = n
    for name, n in rows["participants"]:
        if name in counts:
            counts[name]["participants"] = n
    durations: dict[str, list[float]] = {name: [] for name in counts}
    for name, condition, index, outcome, seconds in rows["progress"]:
        if name not in counts:
            continue
        if outcome in ("declined", "screened_out"):
            counts[name][outcome] += 1
            continue
        scenes = experiments[name].scenes_for(condition)
        end = len(scenes) - 1 if scenes[-1].type == "end" else len(scenes)
        if index >= end:
            counts[name]["finished"] += 1
            if seconds is not None:
                durations[name].append(float(seconds))
    for name, values in durations.items():
        counts[name]["median_finish_s"] = round(statistics.median(values), 1) if values else None
    return counts


@dataclass
class AdminAccess:
    """What other admin features (the live monitor) need of the login: whether this request
    is signed in, its session's id and CSRF token, and whether a session still holds (not
    signed out, same password)."""

    enabled: bool
    logged_in: Callable[[], bool]
    bearer_ok: Callable[[], bool]
    csrf_token: Callable[[], str]
    session_holds: Callable[[str, str], bool]  # (session id, password fingerprint)
    fingerprint: str
    secret: bytes  # signs tickets handed to admin pages

    def session_id(self) -> str:
        return session.get("sid") if self.logged_in() else "token"

    def denied(self) -> Response | None:
        """None for an admin (signed in, or the bearer token); else the answer: 404 with admin
        access off (nothing to find), 401 for anyone else."""
        if not self.enabled:
            return Response("not found", status=404, mimetype="text/plain")
        if self.logged_in() or self.bearer_ok():
            return None
        return Response("admin login (/admin/login) or token required", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="coplay-admin"'})


def register_admin(app: Quart, experiments: dict[str, Experiment], database: Path, token: str | None,
                   *, password_hash: str | None = None, secret_key: str | None = None) -> AdminAccess:
    enabled = token is not None or password_hash is not None
    hashed = parse_hash(password_hash) if password_hash is not None else None
    # in the session, so a new password (with the same secret key) logs everyone out
    fingerprint = hashlib.sha256(password_hash.encode()).hexdigest()[:16] if password_hash else ""
    throttle = LoginThrottle()
    verifying = asyncio.Semaphore(2)  # scrypt takes 32 MiB and ~0.1 s a time
    revoked: dict[str, float] = {}  # session id -> when its cookie would expire anyway

    if hashed is not None:
        app.secret_key = secret_key or secrets.token_bytes(32)
        app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_PATH="/admin",
                          SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                          PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)
        app.session_interface = _AdminCookie()

    def logged_in() -> bool:
        if hashed is None or session.get("admin") is not True:
            return False
        sid, at = session.get("sid"), session.get("at")
        if not isinstance(sid, str) or sid in revoked or session.get("pw") != fingerprint:
            return False
        return isinstance(at, (int, float)) and 0 <= time.time() - at < SESSION_LIFETIME.total_seconds()


    def csrf_token() -> str:
        if not isinstance(session.get("csrf"), str):
            session["csrf"] = secrets.token_urlsafe(32)
        return session["csrf"]

    async def csrf_ok() -> bool:
        given = (await request.form).get(CSRF_FIELD, "")
        expected = session.get("csrf")
        return (isinstance(expected, str) and bool(expected)
                and hmac.compare_digest(given.encode(), expected.encode()))

    def bad_csrf() -> Response:
        return Response("The form's security token is missing or stale: reload the page and try again.",
                        status=403, mimetype="text/plain")

    def need_token() -> Response:
        return Response("admin login or token required", status=401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="coplay-admin"'})

    async def login_form(status: int = 200, error: str | None = None, headers: dict | None = None):
        body = await render_template("admin/login.html", csrf_field=CSRF_FIELD, csrf=csrf_token(),
                                     error=error)
        return Response(body, status=status, headers=headers or {}, mimetype="text/html")

    @app.after_request
    async def admin_headers(response: Response) -> Response:
        if request.path == "/admin" or request.path.startswith("/admin/"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["X-Frame-Options"] = "DENY"
            # a page that runs PyScript sets its own (the replay viewer), or is listed in PAGE_CSP
            response.headers.setdefault("Content-Security-Policy", PAGE_CSP.get(request.path, STRICT_CSP))
        return response

    @app.get("/admin/login")
    async def login_page():
        if hashed is None:
            abort(404)
        if logged_in():
            return redirect("/admin/")
        return await login_form()

    @app.post("/admin/login")
    async def login():
        if hashed is None:
            abort(404)
        if not await csrf_ok():
            return bad_csrf()
        client = request.remote_addr or "?"
        wait = throttle.retry_after(client)
        if wait <= 0:
            password = (await request.form).get("password", "")
            async with verifying:
                wait = throttle.retry_after(client)  # others from this client may have failed meanwhile
                good = wait <= 0 and len(password) <= MAX_PASSWORD and await asyncio.to_thread(
                    verify_password, password, hashed)
            if good:
                throttle.succeeded(client)
                session.clear()
                session.update(admin=True, sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32),
                               at=time.time(), pw=fingerprint)
                session.permanent = True
                return redirect("/admin/", 303)
            if wait <= 0:
                throttle.failed(client)
                return await login_form(401, "Wrong password.")
        seconds = max(1, int(wait + 0.999))
        return await login_form(429, f"Too many failed logins: try again in {seconds} s.",
                                {"Retry-After": str(seconds)})

    @app.post("/admin/logout")
    async def logout():
        if hashed is None:
            abort(404)
        if not await csrf_ok():
            return bad_csrf()
        now = time.time()
        if isinstance(session.get("sid"), str):
            revoked[session["sid"]] = now + SESSION_LIFETIME.total_seconds()
        for sid in [s for s, until in revoked.items() if until < now]:
            del revoked[sid]
        session.clear()
        return redirect("/admin/login", 303)

    @app.get("/admin/")
    async def dashboard():
        if not enabled:
            abort(404)
        session_ok = logged_in()
        if not session_ok and not _bearer_ok(token):
            return redirect("/admin/login") if hashed is not None else need_token()
        counts = await study_counts(database, experiments)
        rows = [{"name": name, "title": exp.title or name,
                 "players": max(len(g.players) for g in exp.games.values()),
                 "counts": counts.get(name) if counts else None}
                for name, exp in sorted(experiments.items())]
        return await render_template("admin/dashboard.html", rows=rows, counts_ok=counts is not None,
                                     csrf_field=CSRF_FIELD, csrf=csrf_token() if session_ok else None)

    def session_holds(sid: str, pw: str) -> bool:
        if sid == "token":
            return token is not None
        return hashed is not None and sid not in revoked and pw == fingerprint

    # one key for every process when COPLAY_SECRET_KEY is set; else this process's own
    secret = secret_key.encode() if secret_key else secrets.token_bytes(32)

    @app.get("/admin/export/<name>.zip")
    async def download_export(name: str):
        if not enabled:
            abort(404)
        if not logged_in() and not _bearer_ok(token):
            return need_token()
        if name not in experiments:
            abort(404)
        data = await asyncio.to_thread(_zip_export, database, experiments[name])
        return Response(data, mimetype="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{name}-export.zip"'})

    access = AdminAccess(enabled, logged_in, lambda: _bearer_ok(token), csrf_token, session_holds,
                         fingerprint, secret)
    app.extensions["coplay_admin"] = access
    return access
