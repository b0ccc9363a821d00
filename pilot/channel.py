"""The env "worker" of a simulated participant: the browser worker's own dispatcher
(worker/dispatcher.py) running in CPython, asked through the same typed messages the page
sends (protocol/messages.py), so the pilot exercises the env, its files and its policies
exactly as a page does — only the interpreter differs."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import aiohttp

from protocol import messages as m
from worker.dispatcher import Dispatcher


class WorkerError(RuntimeError):
    """The env (or a policy) raised; the message is the worker's, with its stage."""


def _clock() -> float:
    return time.time() * 1000.0


class LocalChannel:
    def __init__(self, base_url: str, http: aiohttp.ClientSession, files_root: str):
        self.base_url = base_url
        self.http = http
        self.ids = itertools.count(1)
        self.replies: list[str] = []
        # ONNX policies run on CPython's onnxruntime (the dispatcher's default runner)
        self.dispatcher = Dispatcher(
            self.replies.append, _clock, fetcher=self._fetch, runtime="cpython-pilot", files_root=files_root
        )

    async def _fetch(self, url: str) -> bytes:
        async with self.http.get(self.base_url + url) as response:
            if response.status != 200:
                raise RuntimeError(f"could not load {url}: HTTP {response.status}")
            return await response.read()

    async def request(self, kind: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        rid = next(self.ids)
        text = json.dumps({"id": rid, "type": kind, "t_sent": _clock(), **(fields or {})})
        pending = self.dispatcher.handle_text(text)
        if pending is not None:
            await pending  # INIT, packages, env files, an AI seat's decisions
        for raw in self.replies:
            reply = m.decode(raw)
            if reply.get("id") == rid:
                self.replies.clear()
                if reply["type"] == m.ERROR:
                    raise WorkerError(
                        f"{reply.get('stage')}: {reply.get('error_type')}: {reply.get('message')}"
                    )
                reply["t_received"] = _clock()
                return reply
        raise WorkerError(f"no reply to {kind}")
