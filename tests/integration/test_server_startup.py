"""The real server process: a broken configuration stops it with a message naming the
file and field; a good one serves pages and the runtime with the right headers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import socketio

from tests.servers import ROOT, start_server, write_experiment


def run_app(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "app.py"), "--port", "0", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_invalid_experiment_field_stops_startup(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch", fps=0)
    proc = run_app("--experiments-dir", str(exps), "--database", str(tmp_path / "db.sqlite"))
    assert proc.returncode == 2
    assert str(exps / "catch" / "experiment.py") in proc.stderr
    assert "EXPERIMENT.fps" in proc.stderr and "greater than or equal to 1" in proc.stderr


def test_env_syntax_error_stops_startup(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "broken", env_source="def create_env(config):\n    return (\n")
    proc = run_app("--experiments-dir", str(exps), "--database", str(tmp_path / "db.sqlite"))
    assert proc.returncode == 2
    assert "env.py: line" in proc.stderr


def test_missing_wheel_in_pyscript_toml_stops_startup(tmp_path):
    toml = tmp_path / "pyscript.toml"
    toml.write_text('packages = ["./wheels/nothere-1.0-py3-none-any.whl"]\n')
    proc = run_app("--pyscript-toml", str(toml), "--database", str(tmp_path / "db.sqlite"))
    assert proc.returncode == 2
    assert str(toml) in proc.stderr and "nothere-1.0-py3-none-any.whl" in proc.stderr


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, b""


def test_pages_and_runtime_are_served_with_isolation_and_types(server):
    status, headers, html = get(server.url + "/x/catch")
    assert status == 200
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert b'type="py" worker name="env"' in html
    vendor = html.decode().split('href="')[1].split("/pyscript/core.css")[0]
    status, headers, _ = get(server.url + vendor + "/pyodide/pyodide.asm.wasm")
    assert status == 200 and headers["Content-Type"] == "application/wasm"
    assert "immutable" in headers["Cache-Control"]
    status, headers, _ = get(server.url + vendor + "/pyodide/pyodide.mjs")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, _, toml = get(server.url + "/config/worker.toml")
    assert status == 200 and f'interpreter = "{vendor}/pyodide/pyodide.mjs"'.encode() in toml
    status, _, body = get(server.url + "/x/catch?worker=0")
    assert status == 200 and b"worker name" not in body


@pytest.mark.parametrize("path", [
    "/x/nope", "/src/server/app.py", "/src/pages/..%2F..%2Fapp.py", "/pkgs/anything.whl",
    "/vendor/v/000000000000/pyodide/pyodide.mjs", "/x/catch/assets/../../experiment.py",
])
def test_nothing_outside_the_served_folders_is_reachable(server, path):
    status, _, _ = get(server.url + path)
    assert status == 404


@pytest.mark.parametrize("asgi_server", ["granian", "hypercorn"])
def test_either_asgi_server_serves_pages_and_sockets_and_stops_cleanly(tmp_path, asgi_server):
    """`asgi_server` (server/transport/serving.py): the same app on granian (default) and hypercorn."""
    srv = start_server(tmp_path, env={"COPLAY_ASGI_SERVER": asgi_server})
    try:
        status, headers, body = get(srv.url + "/x/catch")
        assert status == 200 and b"<html" in body.lower()
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"

        async def store_an_episode() -> dict:
            client = socketio.AsyncClient(reconnection=False)
            auth = {"participant_id": f"asgi-{asgi_server}", "experiment": "catch"}
            await client.connect(srv.url, auth=auth, transports=["websocket"], wait_timeout=10)
            try:
                return await client.call("episode_start", {"episode_id": f"ep-{asgi_server}", "seed": 1})
            finally:
                await client.disconnect()

        assert asyncio.run(store_an_episode())["ok"] is True
    finally:
        srv.stop()
    assert srv.process.returncode == 0, srv.log()[-2000:]
    assert f"on {asgi_server}" in srv.log()
    assert srv.query("SELECT participant_id FROM episodes WHERE id=?", f"ep-{asgi_server}") == [
        (f"asgi-{asgi_server}",)]
