"""pages/outbox.py under CPython: numbered, persisted, in-order, acknowledged delivery.

`WebStorage` implements the Web Storage API the page passes in (window.localStorage):
the outbox only uses getItem/setItem/removeItem/key/length. The real localStorage and
the real server are exercised by tests/e2e/test_lossless.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from pages.outbox import Outbox, SpillingStorage, Uploader


class WebStorage:
    def __init__(self):
        self.items: dict[str, str] = {}

    @property
    def length(self):
        return len(self.items)

    def key(self, i):
        return list(self.items)[i]

    def getItem(self, key):  # noqa: N802 - the Web Storage API's names
        return self.items.get(key)

    def setItem(self, key, value):  # noqa: N802
        self.items[key] = str(value)

    def removeItem(self, key):  # noqa: N802
        self.items.pop(key, None)


class QuotaExceeded(Exception):
    pass


class SmallWebStorage(WebStorage):
    """Refuses a write that would take it past `quota` characters, as browsers do."""

    def __init__(self, quota):
        super().__init__()
        self.quota = quota

    def setItem(self, key, value):  # noqa: N802
        used = sum(len(k) + len(v) for k, v in self.items.items() if k != key)
        if used + len(key) + len(str(value)) > self.quota:
            raise QuotaExceeded("the quota has been exceeded")
        super().setItem(key, value)


class Server:
    """Acknowledges what it is sent; `script` lists acks to give first (unreachable,
    refusals), then everything is accepted. Keeps (event, payload) in arrival order."""

    def __init__(self, script=()):
        self.script = list(script)
        self.received: list[tuple[str, dict]] = []

    async def call(self, event, text):
        await asyncio.sleep(0)
        if self.script:
            ack = self.script.pop(0)
            if not ack.get("ok"):
                return ack
        self.received.append((event, json.loads(text)))
        return {"ok": True}


async def no_sleep(ms):
    await asyncio.sleep(0)


def outbox(storage, server, stream="1700000000000-aaaaaaaa", pid="p1", **kw):
    return Outbox(storage, server.call, no_sleep, pid, stream, **kw)


@pytest.mark.asyncio
async def test_put_persists_before_sending_and_delivers_in_order_with_sequence_numbers():
    storage, server = WebStorage(), Server()
    box = outbox(storage, server)
    box.put("episode_start", {"episode_id": "e1"})
    box.put("steps", {"episode_id": "e1", "records": [{"frame": 1}, {"frame": 2}]})
    box.put("episode_end", {"episode_id": "e1"})
    assert box.pending() == 3  # in storage before any delivery happened
    assert await box.flush(1000)
    assert [(e, p["seq"]) for e, p in server.received] == [("episode_start", 1), ("steps", 2),
                                                          ("episode_end", 3)]
    assert {p["stream"] for _, p in server.received} == {"1700000000000-aaaaaaaa"}
    assert storage.items == {} and box.delivered == 3 and box.steps_delivered == {"e1": 2}


@pytest.mark.asyncio
async def test_unreachable_server_keeps_order_and_retries_the_same_message():
    storage = WebStorage()
    server = Server([{"ok": False, "unreachable": True}, {"ok": False, "unreachable": True},
                     {"ok": False, "error": "internal", "retry": True}])
    states = []
    box = outbox(storage, server, on_change=lambda b: states.append(b.waiting))
    for n in range(4):
        box.put("steps", {"episode_id": "e", "records": [{"frame": n}]})
    assert await box.flush(1000)
    assert [p["seq"] for _, p in server.received] == [1, 2, 3, 4]  # nothing skipped or reordered
    assert True in states and states[-1] is False


@pytest.mark.asyncio
async def test_a_message_refused_for_good_is_dropped_and_the_queue_moves_on():
    storage, server = WebStorage(), Server([{"ok": False, "error": "scene 3 is not current"}])
    box = outbox(storage, server)
    box.put("scene_done", {"index": 3})
    box.put("client_event", {"kind": "stage"})
    assert await box.flush(1000)
    assert box.rejected == [("scene_done", "scene 3 is not current")]
    assert [e for e, _ in server.received] == ["client_event"]


@pytest.mark.asyncio
async def test_flush_times_out_and_keeps_what_was_not_acknowledged():
    storage = WebStorage()
    server = Server([{"ok": False, "unreachable": True}] * 1000)
    box = outbox(storage, server)
    box.put("steps", {"episode_id": "e", "records": [{"frame": 1}]})
    assert not await box.flush(200)
    assert box.pending() == 1 and server.received == []


@pytest.mark.asyncio
async def test_an_earlier_page_loads_leftovers_go_first_and_other_participants_stay_untouched():
    storage = WebStorage()
    down = Server([{"ok": False, "unreachable": True}] * 1000)
    first = outbox(storage, down, stream="1700000000000-aaaaaaaa")
    first.put("episode_start", {"episode_id": "old"})
    Uploader(first, "old", batch_size=10).add({"frame": 1})  # half-filled batch, kept open
    assert not await first.flush(100)
    other = outbox(storage, down, pid="someone-else")
    other.put("client_event", {"kind": "stage"})
    await asyncio.sleep(0)

    server = Server()
    second = outbox(storage, server, stream="1700000099999-bbbbbbbb")
    second.put("client_event", {"kind": "stage"})  # queued by the new load before the leftovers
    second.seal_leftovers(chunk=1000)
    assert second.queued_step_records() == 1
    assert await second.flush(1000)
    assert [(e, p["stream"][:13]) for e, p in server.received] == [
        ("episode_start", "1700000000000"), ("client_event", "1700000099999"), ("steps", "1700000099999")]
    assert server.received[2][1]["records"] == [{"frame": 1}]
    assert [k for k in storage.items if "someone-else" in k]  # not ours to send


@pytest.mark.asyncio
async def test_uploader_fills_batches_keeps_the_open_one_in_storage_and_seals_the_rest():
    storage, server = WebStorage(), Server()
    box = outbox(storage, server)
    up = Uploader(box, "e1", batch_size=3)
    for f in range(1, 8):
        up.add({"frame": f})
    open_key = "coplay:open:p1:e1"
    assert json.loads(storage.items[open_key]) == [{"frame": 7}]
    assert await up.finish("completed", 7, 2.5, timeout_ms=1000)
    assert open_key not in storage.items
    steps = [p for e, p in server.received if e == "steps"]
    assert [[r["frame"] for r in p["records"]] for p in steps] == [[1, 2, 3], [4, 5, 6], [7]]
    assert box.steps_delivered["e1"] == 7
    assert server.received[-1] == ("episode_end", {"episode_id": "e1", "status": "completed", "frames": 7,
                                                   "total_reward": 2.5, "stream": box.stream, "seq": 4})


def js_glue(storage, key, value):
    """What pages/jsbridge.try_set_item does in JS: the write's exception becomes False."""
    try:
        storage.setItem(key, value)
        return True
    except QuotaExceeded:
        return False


@pytest.mark.asyncio
@pytest.mark.parametrize("try_set", [None, js_glue], ids=["exception", "glue"])
async def test_a_full_storage_quota_spills_to_memory_and_loses_nothing(try_set):
    local = SmallWebStorage(quota=2000)
    storage = SpillingStorage(local, try_set)
    down = Server([{"ok": False, "unreachable": True}] * 30)
    box = Outbox(storage, down.call, no_sleep, "p1", "1700000000000-aaaaaaaa")
    up = Uploader(box, "e1", batch_size=5)
    for f in range(1, 101):  # a long outage: far more than the quota holds
        up.add({"frame": f, "info": {"pad": "x" * 20}})
    up.seal()
    assert storage.spilled > 0 and storage.memory  # over the quota, kept in memory
    assert sum(len(k) + len(v) for k, v in local.items.items()) <= 2000
    assert box.queued_step_records() == 100
    assert await box.flush(5000)
    frames = [r["frame"] for _, p in down.received for r in p["records"]]
    assert frames == list(range(1, 101))  # every record, once, in order
    assert storage.memory == {} and local.items == {}
