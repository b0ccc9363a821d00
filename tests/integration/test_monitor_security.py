"""The live monitor's Socket.IO namespace /admin against the real server: a socket without
a ticket, with a participant's auth, a forged ticket, or the ticket of a session that
signed out is refused at connect; a signed-in admin's ticket connects and gets the
picture; an action without the session's CSRF token is refused and changes nothing; a
participant on the default namespace cannot reach the monitor's events."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
import socketio
from itsdangerous import URLSafeTimedSerializer

from tests.integration.conftest import participant
from tests.integration.test_admin_login import HASH, SECRET, Browser
from tests.servers import start_server


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("monitor-security"),
                       env={"COPLAY_ADMIN_PASSWORD_HASH": HASH, "COPLAY_SECRET_KEY": SECRET})
    yield srv
    srv.stop()


def monitor_config(browser: Browser) -> dict:
    status, _, body = browser.get("/admin/monitor")
    assert status == 200, body[:200]
    match = re.search(rb'<script type="application/json" id="monitor-config">(.*?)</script>', body, re.S)
    assert match, body
    return json.loads(match.group(1))


async def connect(url: str, auth) -> tuple[socketio.AsyncClient, list]:
    client = socketio.AsyncClient(reconnection=False)
    pictures: list = []
    client.on("picture", pictures.append, namespace="/admin")
    await client.connect(url, namespaces=["/admin"], auth=auth, transports=["websocket"], wait_timeout=5)
    return client, pictures


async def refused(url: str, auth) -> str:
    with pytest.raises(socketio.exceptions.ConnectionError) as info:
        client, _ = await connect(url, auth)
        await client.disconnect()
    return str(info.value)


def test_the_monitor_page_needs_a_signed_in_admin(admin):
    status, headers, _ = Browser(admin.url).get("/admin/monitor")
    assert status == 302 and headers["Location"].endswith("/admin/login")


@pytest.mark.asyncio
async def test_sockets_without_a_valid_admin_session_are_refused(admin):
    browser = Browser(admin.url)
    assert browser.login()[0] == 303
    good = monitor_config(browser)["ticket"]
    assert await refused(admin.url, None)
    assert await refused(admin.url, {"participant_id": "p-1", "experiment": "catch"})  # a participant's auth
    forged = URLSafeTimedSerializer(b"x" * 40, salt="coplay-monitor").dumps(
        {"sid": "made-up", "csrf": "c", "pw": ""})
    assert await refused(admin.url, {"ticket": forged})
    assert await refused(admin.url, {"ticket": good[:-4] + "AAAA"})

    client, pictures = await connect(admin.url, {"ticket": good})
    for _ in range(50):
        if pictures:
            break
        await asyncio.sleep(0.05)
    assert pictures and "catch" in pictures[0]["studies"]
    await client.disconnect()

    # signed out: the same ticket no longer opens the monitor
    status, _, body = browser.get("/admin/")
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', body).group(1).decode()
    assert browser.post("/admin/logout", {"csrf_token": csrf})[0] == 303
    assert await refused(admin.url, {"ticket": good})


@pytest.mark.asyncio
async def test_actions_need_the_sessions_csrf_token(admin):
    browser = Browser(admin.url)
    assert browser.login()[0] == 303
    config = monitor_config(browser)
    client, _ = await connect(admin.url, {"ticket": config["ticket"]})

    async def act(**message):
        return await client.call("act", message, namespace="/admin", timeout=5)

    try:
        for csrf in ("", "guess", Browser(admin.url).csrf()):
            ack = await act(action="close_study", experiment="catch", csrf=csrf)
            assert ack["ok"] is False and "token" in ack["error"]
        ack = await act(action="shutdown_server", csrf=config["csrf"])
        assert ack["ok"] is False and "bad action" in ack["error"]
        # nothing was closed: a new participant still gets the study
        async with participant(admin.url, "p-new") as p:  # a page load: its session is recorded
            hello = await p.call("hello", {"stream": "page-load-1"})
            assert hello["ok"] and "closed" not in hello
        assert await act(action="close_study", experiment="catch", csrf=config["csrf"]) == {"ok": True}
        async with participant(admin.url, "p-newer") as p:
            hello = await p.call("hello", {})
            assert hello["closed"] is True and "not taking new participants" in hello["message"]
        async with participant(admin.url, "p-new") as p:  # already started: goes on
            hello = await p.call("hello", {})
            assert "closed" not in hello and hello["scene_index"] == 0
        assert await act(action="reopen_study", experiment="catch", csrf=config["csrf"]) == {"ok": True}
    finally:
        await client.disconnect()


@pytest.mark.asyncio
async def test_participants_cannot_reach_the_monitors_events(admin):
    async with participant(admin.url, "p-curious") as p:
        ack = await p.call("act", {"action": "close_study", "experiment": "catch", "csrf": "x"})
        assert ack["ok"] is False
        errors = await p.wait_errors(1)
        assert errors and errors[0]["event"] == "act"


@pytest.mark.asyncio
async def test_a_waiting_participant_is_sent_to_the_fallback(admin):
    browser = Browser(admin.url)
    assert browser.login()[0] == 303
    config = monitor_config(browser)
    client, pictures = await connect(admin.url, {"ticket": config["ticket"]})
    try:
        async with participant(admin.url, "p-waiting", "kitchen") as p:
            told: list = []
            p.sio.on("wait_timeout", told.append)
            ack = await p.call("mp_join", {"episode_id": "ep-waiting-1"})
            assert ack["status"] == "waiting"
            for _ in range(60):  # the next push lists them
                queues = pictures[-1]["studies"]["kitchen"]["waiting"]
                waiting = [person for queue in queues for person in queue["participants"]]
                if waiting:
                    break
                await asyncio.sleep(0.1)
            assert [w["participant"] for w in waiting] == ["p-waiting"]
            ack = await client.call("act", {"action": "send_to_fallback", "sid": waiting[0]["sid"],
                                            "csrf": config["csrf"]}, namespace="/admin", timeout=5)
            assert ack == {"ok": True}
            for _ in range(50):
                if told:
                    break
                await asyncio.sleep(0.05)
            assert told and "message" in told[0]
            again = await client.call("act", {"action": "send_to_fallback", "sid": waiting[0]["sid"],
                                              "csrf": config["csrf"]}, namespace="/admin", timeout=5)
            assert again["ok"] is False and "not waiting" in again["error"]
    finally:
        await client.disconnect()
    [(payload,)] = admin.query("SELECT payload FROM events WHERE kind = 'wait_timeout'")
    assert json.loads(payload)["by"] == "researcher"
    actions = [json.loads(p)["action"] for (p,) in admin.query(
        "SELECT payload FROM events WHERE kind = 'admin_action'")]
    assert actions.count("send_to_fallback") == 1
