"""Integration fixtures: one real Coplay server process per test module, and a
connected python-socketio AsyncClient helper. Async tests carry
``@pytest.mark.asyncio`` (pytest-asyncio strict mode; no repository-level config)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import socketio

from tests.servers import RunningServer, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> RunningServer:
    running = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield running
    finally:
        running.stop()
    assert running.process.returncode is not None


class Participant:
    """A socket.io client that remembers the ``server_error`` events it received."""

    def __init__(self, url: str, auth: dict):
        self.url = url
        self.auth = auth
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.server_errors: list[dict] = []
        self.sio.on("server_error", self.server_errors.append)

    async def connect(self) -> None:
        await self.sio.connect(self.url, auth=self.auth, transports=["websocket"], wait_timeout=10)

    async def call(self, event: str, data, timeout: float = 5):
        return await self.sio.call(event, data, timeout=timeout)

    async def wait_errors(self, count: int, timeout: float = 3.0) -> list[dict]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.server_errors) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return self.server_errors


@contextlib.asynccontextmanager
async def participant(url: str, participant_id: str, experiment: str = "catch"):
    client = Participant(url, {"participant_id": participant_id, "experiment": experiment})
    await client.connect()
    try:
        yield client
    finally:
        await client.sio.disconnect()


@pytest.fixture
def join(server):
    """``async with join("p-1") as client:`` — a connected participant of ``catch``."""

    def _join(participant_id: str, experiment: str = "catch"):
        return participant(server.url, participant_id, experiment)

    return _join
