"""The scale bench's setups (bench/load.py): which processes, with Redis or not, and where they
run on the machine's cores — the servers never share a core with the bots when there are two
or more cores."""

from __future__ import annotations

import pytest

from bench import load


def test_setup_names_give_processes_and_redis():
    assert [load.setup_processes(name) for name in load.setups("1,1r,2,3")] == [
        (1, False), (1, True), (2, True), (3, True)]


def test_a_bad_setup_name_fails_before_the_run():
    with pytest.raises(ValueError):
        load.setups("1,two")


@pytest.mark.parametrize("cores, servers, expected", [
    (2, 1, ([{0}], {1})),
    (2, 2, ([{0}, {0}], {1})),
    (2, 3, ([{0}, {0}, {0}], {1})),
    (4, 3, ([{0}, {1}, {2}], {3})),
    (4, 4, ([{0, 1, 2}] * 4, {3})),
    (1, 1, (None, None)),
])
def test_servers_and_bots_get_cores_of_their_own(monkeypatch, cores, servers, expected):
    monkeypatch.setattr(load, "CORES", cores)
    assert load.cores_for(servers) == expected
