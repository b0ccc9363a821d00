"""Data downloads are behind the admin token: without one configured the route does
not exist; with one, a wrong or missing token gets 401 and the right one the export."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import zipfile

import pytest

from tests.servers import start_server

TOKEN = "t0ken-for-tests-only-123456"


def fetch(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("admin"), env={"COPLAY_ADMIN_TOKEN": TOKEN})
    yield srv
    srv.stop()


def test_export_needs_the_token(admin_server):
    url = admin_server.url + "/admin/export/catch.zip"
    assert fetch(url)[0] == 401
    assert fetch(url, "wrong-token-wrong-token")[0] == 401
    status, body = fetch(url, TOKEN)
    assert status == 200
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "catch/manifest.json" in names and "catch/steps.csv" in names and "catch/steps.parquet" in names
    assert fetch(admin_server.url + "/admin/export/nope.zip", TOKEN)[0] == 404


def test_without_a_configured_token_admin_routes_do_not_exist(tmp_path):
    srv = start_server(tmp_path)
    try:
        assert fetch(srv.url + "/admin/export/catch.zip", TOKEN)[0] == 404
    finally:
        srv.stop()
