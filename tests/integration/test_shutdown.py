"""Graceful shutdown of the real server process (app.py, server/transport/lifecycle.py): SIGTERM while
participants upload step batches and a two-player room is playing loses no acknowledged
record, tells every page ``server_restart``, refuses newcomers while it drains, saves the
room as ``interrupted`` with its inputs, and exits 0 within ``shutdown_grace``. A restarted
server on the same database then takes the unacknowledged batches, each record once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import socketio

from server.transport.lifecycle import RESTART_MESSAGE
from tests.servers import start_server, write_experiment, write_kitchen

pytestmark = pytest.mark.asyncio

GRACE = 4.0
BATCH = 10


def records(start: int) -> list[dict]:
    return [{"frame": f, "actions": {"p0": "left"}, "rewards": {"p0": 0}, "done": False, "info": {"f": f}}
            for f in range(start, start + BATCH)]


class Peer:
    """A python-socketio client that keeps what the server told it."""

    def __init__(self, url: str, participant_id: str, experiment: str):
        self.url = url
        self.pid = participant_id
        self.auth = {"participant_id": participant_id, "experiment": experiment}
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.restart: list[tuple[Any, float]] = []
        self.room_start: list[dict] = []
        self.connect_errors: list[Any] = []
        self.sio.on("server_restart", lambda data: self.restart.append((data, time.monotonic())))
        self.sio.on("room_start", self.room_start.append)
        self.sio.on("connect_error", self.connect_errors.append)

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)

    async def send(self, event: str, data: Any, timeout: float = 3.0) -> Any:
        """The ack, or None if none came (the connection went away, or it timed out)."""
        fut = asyncio.get_running_loop().create_future()
        try:
            await self.sio.emit(event, data,
                                callback=lambda *a: fut.done() or fut.set_result(a[0] if a else None))
        except socketio.exceptions.SocketIOError:
            return None
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None


class Uploader(Peer):
    """Uploads batches of 10 step records back to back until its connection ends."""

    def __init__(self, url: str, i: int):
        super().__init__(url, f"shut-{i}", "catch")
        self.episode = f"ep-shut-{i}"
        self.acked: list[int] = []  # first frame of each batch the server acknowledged
        self.unacked: list[int] = []
        self.acked_after_restart = 0
        self.refusals: list[dict] = []

    async def run(self) -> None:
        start = 0
        while self.sio.connected:
            ack = await self.send("steps", {"episode_id": self.episode, "records": records(start)})
            if ack is None and self.sio.connected:
                continue  # not answered yet; resend the same batch (writes are idempotent)
            if isinstance(ack, dict) and ack.get("ok"):
                assert ack == {"ok": True, "stored": BATCH, "received": BATCH}, ack
                self.acked.append(start)
                self.acked_after_restart += bool(self.restart)
            else:
                if ack is not None:
                    self.refusals.append(ack)
                self.unacked.append(start)
            start += BATCH
            await asyncio.sleep(0.01)


class Player(Peer):
    """One seat of a kitchen room: one input per frame, 30 frames a second."""

    def __init__(self, url: str, i: int):
        super().__init__(url, f"shut-player-{i}", "kitchen")
        self.value = ["up", "left"][i]
        self.sent: dict[int, str] = {}
        self.acked: dict[int, str] = {}

    async def run(self) -> None:
        frame = 2
        while self.sio.connected and not self.restart:
            self.sent[frame] = self.value
            ack = await self.send("input", {"frame": frame, "inputs": [[frame, self.value]], "adv": 0})
            if ack == {"ok": True}:
                self.acked[frame] = self.value
            frame += 1
            await asyncio.sleep(1 / 30)


def rows(server, sql: str, *args) -> list[tuple]:
    return server.query(sql, *args)


async def test_sigterm_mid_game_loses_no_acknowledged_record(tmp_path):
    exps = tmp_path / "experiments"
    write_experiment(exps, "catch")
    write_kitchen(exps)
    server = start_server(tmp_path, experiments_dir=exps, extra_args=["--shutdown-grace", str(GRACE)])
    try:
        uploaders = [Uploader(server.url, i) for i in range(5)]
        players = [Player(server.url, i) for i in range(2)]
        newcomer = Peer(server.url, "shut-newcomer", "kitchen")  # connected, joins only while draining
        for peer in [*uploaders, *players, newcomer]:
            await peer.connect()
        for up in uploaders:
            assert (await up.send("episode_start", {"episode_id": up.episode, "seed": 1}))["ok"] is True
        assert (await players[0].send("mp_join", {"episode_id": "ep-shut-p0"}))["status"] == "waiting"
        assert (await players[1].send("mp_join", {"episode_id": "ep-shut-p1"}))["status"] == "matched"
        for _ in range(200):
            if all(p.room_start for p in players):
                break
            await asyncio.sleep(0.01)
        room = players[0].room_start[0]["room"]

        runs = [asyncio.create_task(peer.run()) for peer in [*uploaders, *players]]
        await asyncio.sleep(1.5)
        assert all(up.acked for up in uploaders) and all(p.acked for p in players)

        t_term = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for _ in range(300):
            if newcomer.restart:
                break
            await asyncio.sleep(0.01)

        # while it drains: health checks fail (a load balancer sends newcomers elsewhere) ...
        def health() -> int:
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
                    return resp.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert await asyncio.to_thread(health) == 503
        # ... a new connection is refused with the message, and so is a new room
        probe = Peer(server.url, "shut-probe", "catch")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await probe.connect()
        errors = [e.get("message") if isinstance(e, dict) else e for e in probe.connect_errors]
        assert errors == [RESTART_MESSAGE]
        refused = await newcomer.send("mp_join", {"episode_id": "ep-shut-late"})
        assert refused == {"ok": False, "error": RESTART_MESSAGE, "retry": True}

        exit_code = await asyncio.to_thread(server.process.wait, GRACE + 5)
        took = time.monotonic() - t_term
        await asyncio.wait_for(asyncio.gather(*runs), 10)
        for peer in [*uploaders, *players, newcomer]:
            await peer.sio.disconnect()
        log = server.log()
        assert exit_code == 0, log[-3000:]
        assert took <= GRACE, f"exit took {took:.2f}s"
        assert "drained:" in log and "Traceback" not in log, log[-3000:]

        # every page was told, with a retry hint
        for peer in [*uploaders, *players, newcomer]:
            assert len(peer.restart) == 1, peer.pid
            data, _ = peer.restart[0]
            assert data["message"] == RESTART_MESSAGE and isinstance(data["retry_after_ms"], int)
        # the server kept acknowledging uploads while it drained
        assert sum(up.acked_after_restart for up in uploaders) > 0
        for up in uploaders:
            assert all(r == {"ok": False, "error": RESTART_MESSAGE, "retry": True} for r in up.refusals), \
                up.refusals

        # every acknowledged record is stored, exactly once
        for up in uploaders:
            stored = [f for (f,) in rows(server, "SELECT frame FROM steps WHERE episode_id=? ORDER BY frame",
                                         up.episode)]
            assert len(stored) == len(set(stored))
            acked = {f for start in up.acked for f in range(start, start + BATCH)}
            assert acked <= set(stored), sorted(acked - set(stored))[:10]

        # the room was saved as interrupted, with every acknowledged input and only sent ones
        (status, end_reason, ended, inputs), = rows(
            server, "SELECT status, end_reason, ended, inputs FROM rooms WHERE id=?", room)
        assert (status, end_reason) == ("interrupted", "server shutdown") and ended is not None
        inputs = json.loads(inputs)
        for player, peer in zip(("p0", "p1"), players, strict=True):
            recorded = {int(f): v for f, v in inputs[player].items()}
            assert peer.acked and peer.acked.items() <= recorded.items()
            assert recorded.items() <= peer.sent.items()
        assert rows(server, "SELECT count(*) FROM rooms WHERE status='playing'") == [(0,)]
    finally:
        server.stop()

    # the same database, a new process: the pages resend what was not acknowledged
    again = start_server(tmp_path, experiments_dir=exps, extra_args=["--shutdown-grace", str(GRACE)])
    try:
        assert again.database == server.database
        for up in uploaders:
            peer = Peer(again.url, up.pid, "catch")
            await peer.connect()
            resend = up.unacked + up.acked[-1:]  # one acknowledged batch again: a no-op
            for start in resend:
                ack = await peer.send("steps", {"episode_id": up.episode, "records": records(start)})
                assert isinstance(ack, dict) and ack["ok"] is True and ack["received"] == BATCH, ack
            await peer.sio.disconnect()
            sent = {f for start in up.acked + up.unacked for f in range(start, start + BATCH)}
            stored = [f for (f,) in rows(again, "SELECT frame FROM steps WHERE episode_id=?", up.episode)]
            assert len(stored) == len(set(stored)) and set(stored) == sent
    finally:
        again.stop()
    assert again.process.returncode == 0
