"""The load driver's placement and pairing (pilot/load.py): a room's two participants on one
server process by default (rooms round robin over the processes), each on any with random
placement; the two placed together join one after the other, and a partner who left before
the room does not leave the other waiting."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import pytest

from pilot.load import LoadProbe, Pair, placements

URLS = ["http://a", "http://b", "http://c"]


def test_sticky_placement_keeps_a_room_on_one_process_and_spreads_the_rooms():
    seats = placements({"urls": URLS, "rooms": 4, "first_room": 2}, random.Random(1))
    assert seats == [("http://c", "http://c"), ("http://a", "http://a"), ("http://b", "http://b"),
                     ("http://c", "http://c")]


def test_random_placement_puts_each_seat_anywhere():
    seats = placements({"urls": URLS, "rooms": 200, "placement": "random"}, random.Random(1))
    assert {url for pair in seats for url in pair} == set(URLS)
    assert any(a != b for a, b in seats)


def _pair(probe: LoadProbe) -> tuple:
    a, b = SimpleNamespace(pid="p-0"), SimpleNamespace(pid="p-1")
    probe.pairs["p-0"] = probe.pairs["p-1"] = Pair(a, b)
    return a, b


@pytest.mark.asyncio
async def test_the_first_of_a_pair_joins_first_and_the_second_before_any_other_pair(tmp_path):
    probe = LoadProbe(str(tmp_path / "join.lock"))
    a, b = _pair(probe)
    c, d = SimpleNamespace(pid="q-0"), SimpleNamespace(pid="q-1")
    probe.pairs["q-0"] = probe.pairs["q-1"] = Pair(c, d)
    order = []

    async def join(bot, delay):
        await asyncio.sleep(delay)
        async with probe.joining(bot, "play", 0):
            order.append(bot.pid)
            await asyncio.sleep(0.01)  # the join's round trip

    # the second of each pair arrives first; the other pair's come in between
    await asyncio.gather(join(b, 0), join(d, 0.001), join(a, 0.02), join(c, 0.021))
    assert order in (["p-0", "p-1", "q-0", "q-1"], ["q-0", "q-1", "p-0", "p-1"])
    async with probe.joining(a, "play", 1):  # a later episode: as a page joins
        pass


@pytest.mark.asyncio
async def test_a_partner_gone_before_the_room_does_not_leave_the_other_waiting():
    probe = LoadProbe()
    probe.total = 2
    a, b = _pair(probe)
    waiting = asyncio.create_task(probe.joining(a, "play", 0).__aenter__())
    await asyncio.sleep(0.01)
    probe.finished(b)
    with pytest.raises(RuntimeError, match="left before the room"):
        await asyncio.wait_for(waiting, 1)
    assert not probe.ready.is_set()
    probe.finished(a)
    assert probe.ready.is_set()
