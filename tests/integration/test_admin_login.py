"""Admin login against the real server process: without a session or token the dashboard
redirects to the login page and downloads answer 401; the login form and logout are
CSRF-checked; a wrong password gets no session; logout revokes the session; failed logins
lock the client out; a malformed hash stops the server at startup, naming the field."""

from __future__ import annotations

import hashlib
import http.cookiejar
import io
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import pytest

from server.admin.password import hash_password
from tests.integration.conftest import participant
from tests.servers import ROOT, start_server, write_experiment

PASSWORD = "correct horse battery staple"
HASH = hash_password(PASSWORD, n=2 ** 12)  # a cheaper cost than the CLI's; the format is the same
TOKEN = "t0ken-for-tests-only-123456"
SECRET = "s" * 40


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, path: str, form: dict | None = None, headers: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def get(self, path: str, **kw):
        return self.request(path, **kw)

    def post(self, path: str, form: dict, **kw):
        return self.request(path, form=form, **kw)

    def csrf(self, path: str = "/admin/login") -> str:
        status, _, body = self.get(path)
        assert status == 200, (status, body[:200])
        match = re.search(rb'name="csrf_token" value="([^"]+)"', body)
        assert match, body
        return match.group(1).decode()

    def login(self, password: str = PASSWORD):
        return self.post("/admin/login", {"csrf_token": self.csrf(), "password": password})

    def cookie(self) -> str | None:
        return next((c.value for c in self.jar if c.name == "coplay_admin"), None)


def with_cookie(base: str, path: str, cookie: str):
    return Browser(base).get(path, headers={"Cookie": f"coplay_admin={cookie}"})


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("admin-login"),
                       env={"COPLAY_ADMIN_PASSWORD_HASH": HASH, "COPLAY_ADMIN_TOKEN": TOKEN,
                            "COPLAY_SECRET_KEY": SECRET})
    yield srv
    srv.stop()


def test_unauthenticated_dashboard_redirects_to_login(admin):
    status, headers, _ = Browser(admin.url).get("/admin/")
    assert status == 302 and headers["Location"].endswith("/admin/login")
    assert headers["Cache-Control"] == "no-store"


def test_unauthenticated_download_gets_401(admin):
    status, headers, body = Browser(admin.url).get("/admin/export/catch.zip")
    assert status == 401 and not body.startswith(b"PK")
    assert headers["Cache-Control"] == "no-store"
    assert with_cookie(admin.url, "/admin/export/catch.zip", "forged.cookie.value")[0] == 401


def test_login_page_sets_a_strict_httponly_cookie_scoped_to_admin(admin):
    status, headers, body = Browser(admin.url).get("/admin/login")
    assert status == 200 and b'type="password"' in body and b"<script" not in body
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("coplay_admin=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_posts_without_the_right_csrf_token_are_refused(admin):
    browser = Browser(admin.url)
    browser.csrf()
    assert browser.post("/admin/login", {"password": PASSWORD})[0] == 403
    assert browser.post("/admin/login", {"csrf_token": "guess", "password": PASSWORD})[0] == 403
    # a real token, but another browser's: it is bound to the session
    other = Browser(admin.url).csrf()
    assert browser.post("/admin/login", {"csrf_token": other, "password": PASSWORD})[0] == 403
    # no session cookie at all (a cross-site form post)
    assert Browser(admin.url).post("/admin/login", {"csrf_token": other, "password": PASSWORD})[0] == 403
    assert browser.get("/admin/")[0] == 302

    assert browser.login()[0] == 303
    assert browser.post("/admin/logout", {})[0] == 403
    assert browser.post("/admin/logout", {"csrf_token": other})[0] == 403
    assert browser.get("/admin/")[0] == 200  # still signed in


def test_wrong_password_gets_no_session(admin):
    browser = Browser(admin.url)
    status, _, body = browser.login("not the password at all")
    assert status == 401 and b"Wrong password" in body
    assert browser.get("/admin/")[0] == 302
    assert browser.get("/admin/export/catch.zip")[0] == 401


def test_right_password_dashboard_download_and_logout(admin):
    browser = Browser(admin.url)
    status, headers, _ = browser.login()
    assert status == 303 and headers["Location"].endswith("/admin/")
    cookie = browser.cookie()
    assert cookie

    status, headers, body = browser.get("/admin/")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    page = body.decode()
    assert 'data-experiment="catch"' in page and 'data-experiment="kitchen"' in page
    assert 'href="/admin/export/catch.zip"' in page
    assert 'action="/admin/logout"' in page and "<script" not in page
    assert browser.get("/admin/login")[0] == 302  # already signed in

    status, headers, body = browser.get("/admin/export/catch.zip")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert "catch/manifest.json" in zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert browser.get("/admin/export/nope.zip")[0] == 404

    # the bearer token still works for scripts, with or without a session
    assert Browser(admin.url).get("/admin/export/catch.zip",
                                  headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert Browser(admin.url).get("/admin/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    status, headers, _ = browser.post("/admin/logout", {"csrf_token": token})
    assert status == 303 and headers["Location"].endswith("/admin/login")
    assert browser.cookie() is None
    assert browser.get("/admin/export/catch.zip")[0] == 401
    assert browser.get("/admin/")[0] == 302
    # the old cookie, replayed after logout, is revoked
    assert with_cookie(admin.url, "/admin/export/catch.zip", cookie)[0] == 401
    assert with_cookie(admin.url, "/admin/", cookie)[0] == 302


def test_a_tampered_session_cookie_is_ignored(admin):
    browser = Browser(admin.url)
    assert browser.login()[0] == 303
    cookie = browser.cookie()
    tampered = cookie[:-5] + ("A" if cookie[-5] != "A" else "B") + cookie[-4:]  # in the signature
    assert with_cookie(admin.url, "/admin/export/catch.zip", tampered)[0] == 401
    assert with_cookie(admin.url, "/admin/export/catch.zip", cookie)[0] == 200


def forge_session(secret: str) -> str:
    """An admin session cookie signed the way Quart signs it, with `secret`."""
    from itsdangerous import URLSafeTimedSerializer
    from quart.sessions import SecureCookieSessionInterface

    iface = SecureCookieSessionInterface()
    serializer = URLSafeTimedSerializer(secret, salt=iface.salt, serializer=iface.serializer,
                                        signer_kwargs={"key_derivation": iface.key_derivation,
                                                       "digest_method": iface.digest_method})
    return serializer.dumps({"admin": True, "sid": "forged", "csrf": "x", "at": time.time(),
                             "pw": hashlib.sha256(HASH.encode()).hexdigest()[:16]})


def test_a_session_signed_with_another_key_is_refused(admin):
    assert with_cookie(admin.url, "/admin/", forge_session(SECRET))[0] == 200  # the forgery is faithful
    assert with_cookie(admin.url, "/admin/", forge_session("another-secret-key-another-secret-key"))[0] == 302
    assert with_cookie(admin.url, "/admin/export/catch.zip", forge_session("x" * 40))[0] == 401


def test_failed_logins_lock_the_client_out_and_the_key_outlives_the_process(admin, tmp_path):
    """A second process with the same secret key (a restart) accepts the first one's session;
    its own failed logins lock the client out, the right password included."""
    keeper = Browser(admin.url)
    assert keeper.login()[0] == 303
    srv = start_server(tmp_path, env={"COPLAY_ADMIN_PASSWORD_HASH": HASH, "COPLAY_SECRET_KEY": SECRET})
    try:
        assert with_cookie(srv.url, "/admin/", keeper.cookie())[0] == 200
        browser = Browser(srv.url)
        for _ in range(5):
            assert browser.login("wrong wrong wrong")[0] == 401
        assert browser.login("wrong wrong wrong")[0] == 401  # the first one that costs a lockout
        status, headers, body = browser.login()
        assert status == 429 and b"Too many failed logins" in body
        time.sleep(int(headers["Retry-After"]) + 0.2)
        assert browser.login()[0] == 303
        assert browser.get("/admin/")[0] == 200
    finally:
        srv.stop()


def test_without_a_secret_key_sessions_do_not_outlive_the_process(admin, tmp_path):
    keeper = Browser(admin.url)
    assert keeper.login()[0] == 303
    srv = start_server(tmp_path, env={"COPLAY_ADMIN_PASSWORD_HASH": HASH})
    try:
        assert with_cookie(srv.url, "/admin/", keeper.cookie())[0] == 302
        browser = Browser(srv.url)
        assert browser.login()[0] == 303 and browser.get("/admin/")[0] == 200
    finally:
        srv.stop()


@pytest.mark.asyncio
async def test_dashboard_counts_participants_finished_declined_and_episodes(tmp_path):
    scenes = [{"type": "consent", "html": "<p>ok?</p>"}, {"type": "game"}, {"type": "end"}]
    write_experiment(tmp_path / "experiments", "study", scenes=scenes, title="A <b>study</b>")
    write_experiment(tmp_path / "experiments", "other")
    srv = start_server(tmp_path, experiments_dir=tmp_path / "experiments",
                       env={"COPLAY_ADMIN_PASSWORD_HASH": HASH})
    try:
        async with participant(srv.url, "fin", "study") as p:
            assert (await p.call("episode_start", {"episode_id": "ep-fin", "seed": 1}))["ok"]
            assert (await p.call("episode_end", {"episode_id": "ep-fin", "status": "completed",
                                                 "frames": 0}))["ok"]
            for index, scene_id in enumerate(["consent-0", "game-1"]):
                assert (await p.call("scene_done", {"index": index, "scene_id": scene_id}))["ok"]
        async with participant(srv.url, "dec", "study") as p:
            no = {"index": 0, "scene_id": "consent-0", "outcome": "declined"}
            assert (await p.call("scene_done", no))["ok"]
        async with participant(srv.url, "mid", "study") as p:
            assert (await p.call("scene_done", {"index": 0, "scene_id": "consent-0"}))["ok"]
            assert (await p.call("episode_start", {"episode_id": "ep-mid", "seed": 2}))["ok"]

        browser = Browser(srv.url)
        assert browser.login()[0] == 303
        status, _, body = browser.get("/admin/")
        assert status == 200
        page = body.decode()
        rows = {row.split('"')[0]: row for row in page.split('<tr data-experiment="')[1:]}
        assert sorted(rows) == ["other", "study"]
        study = rows["study"]
        counts = dict(re.findall(r'data-count="(\w+)">([^<]*)<', study))
        assert counts == {"participants": "3", "finished": "1", "declined": "1", "episodes": "1 / 2",
                          "rooms": "0 / 0", "rooms_desync": "0", "rooms_replay_error": "0"}
        assert "A &lt;b&gt;study&lt;/b&gt;" in study  # escaped, not markup
        assert dict(re.findall(r'data-count="(\w+)">([^<]*)<', rows["other"]))["participants"] == "0"
    finally:
        srv.stop()


def test_token_only_has_no_login_page(tmp_path):
    srv = start_server(tmp_path, env={"COPLAY_ADMIN_TOKEN": TOKEN})
    try:
        browser = Browser(srv.url)
        assert browser.get("/admin/login")[0] == 404
        assert browser.post("/admin/login", {"password": PASSWORD})[0] == 404
        assert browser.get("/admin/")[0] == 401
        assert browser.get("/admin/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    finally:
        srv.stop()


def test_nothing_configured_every_admin_route_is_404(tmp_path):
    srv = start_server(tmp_path)
    try:
        browser = Browser(srv.url)
        for path in ("/admin/", "/admin/login", "/admin/export/catch.zip"):
            status, headers, _ = browser.get(path)
            assert status == 404, path
            assert headers["Cache-Control"] == "no-store"
        assert browser.post("/admin/login", {"password": PASSWORD})[0] == 404
        assert browser.post("/admin/logout", {})[0] == 404
        assert "Set-Cookie" not in browser.get("/admin/login")[1]
    finally:
        srv.stop()


def test_malformed_hash_stops_startup_naming_the_field(tmp_path):
    leaked = "my-actual-password-pasted-by-mistake"
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "0",
                           "--database", str(tmp_path / "db.sqlite")],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "COPLAY_ADMIN_PASSWORD_HASH": leaked})
    assert proc.returncode == 2
    assert "admin_password_hash" in proc.stderr and "COPLAY_ADMIN_PASSWORD_HASH" in proc.stderr
    assert "scrypt$N$r$p$salt$key" in proc.stderr
    assert leaked not in proc.stderr + proc.stdout  # the bad value is not echoed into logs
