"""The committed deployment (deploy/): Debian's nginx with deploy/nginx/coplay.conf — its
upstream pointed at this test's ports and its TLS server blocks replaced by one plain
loopback listener, everything else as committed, coplay-locations.conf included verbatim —
in front of 2 Coplay processes sharing rooms through a real Redis and data in a real
Postgres. A pilot of the example study runs through it and every data check passes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.postgres import start_postgres
from tests.redis_server import start_redis
from tests.servers import ROOT, free_port, start_server

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DEPLOY = ROOT / "deploy" / "nginx"
TOKEN = "deploy-test-admin-token-0123456789"
SECRET = "k" * 48


def loopback_config(work: Path, port: int, upstreams: list[int]) -> Path:
    """deploy/nginx/coplay.conf without TLS, on loopback, as an nginx main config."""
    site = (DEPLOY / "coplay.conf").read_text()
    site = re.sub(r"(upstream coplay \{.*?)((?:\s*server 127\.0\.0\.1:\d+;)+)",
                  lambda m: m.group(1) + "".join(f"\n    server 127.0.0.1:{p};" for p in upstreams),
                  site, count=1, flags=re.S)
    head = site.split("server {", 1)[0]  # the map and the upstream; the TLS server blocks go
    assert "upstream coplay" in head and "$connection_upgrade" in head
    temp = work / "tmp"
    temp.mkdir()
    conf = work / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{head}
    server {{
        listen 127.0.0.1:{port};
        include {DEPLOY / "coplay-locations.conf"};
    }}
}}
""")
    return conf


def start_nginx(work: Path, upstreams: list[int]) -> tuple[subprocess.Popen, str]:
    if not Path(NGINX).exists():
        raise RuntimeError("nginx is missing: install Debian's nginx (nox -s tests does)")
    port = free_port()
    conf = loopback_config(work, port, upstreams)
    check = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(work)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(work)], stderr=subprocess.STDOUT,
                            stdout=(work / "nginx.out").open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"nginx did not answer: {(work / 'error.log').read_text()}")


@pytest.fixture
def deployment(tmp_path):
    redis = start_redis()
    postgres = start_postgres()
    servers, nginx = [], None
    try:
        database = postgres.create_database("coplay")
        env = {"COPLAY_REDIS_URL": redis.url, "COPLAY_ADMIN_TOKEN": TOKEN, "COPLAY_SECRET_KEY": SECRET,
               "COPLAY_TRUST_FORWARDED_FOR": "true", "COPLAY_MAX_CONNECTIONS_PER_IP": "1000",
               "COPLAY_MAX_ROOMS_PER_IP": "1000"}
        for i in range(2):
            work = tmp_path / f"srv{i}"
            work.mkdir()
            servers.append(start_server(work, database=database, env=env))
        (tmp_path / "nginx").mkdir()
        nginx, url = start_nginx(tmp_path / "nginx", [s.port for s in servers])
        yield {"url": url, "database": database, "servers": servers}
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        for server in servers:
            server.stop()
        postgres.stop()
        redis.stop()


def test_a_pilot_through_nginx_in_front_of_two_processes_redis_and_postgres(deployment, tmp_path):
    report_path = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pilot", "study", "--url", deployment["url"],
                           "--database", deployment["database"], "--admin-token", TOKEN,
                           "--participants", "6", "--concurrency", "6", "--speed", "8",
                           "--arrive-every", "0.05", "--json", str(report_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    report = json.loads(report_path.read_text())
    assert report["outcomes"] == {"finished": 6} and report["rooms"] == {"completed": 6}, output
    assert all(c["ok"] for c in report["checks"]) and len(report["checks"]) == 6, report["checks"]
    # both processes served participants (nginx spread the sockets; rooms crossed processes)
    for server in deployment["servers"]:
        log = server.log()
        assert log.count("INFO disconnect ") >= 2, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
