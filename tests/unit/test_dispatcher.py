"""worker/dispatcher.py: raw text in, encoded replies out (post=list.append, fake clock)."""

import asyncio
import itertools
import json
import sys
from pathlib import Path

import pytest

from protocol import messages as m
from worker.dispatcher import Dispatcher
from worker.env_host import forget_search_path

ROOT = Path(__file__).resolve().parents[2]
CATCH_SOURCE = (ROOT / "experiments" / "catch" / "env.py").read_text()

BOOM_ENV = """
class Boom:
    def reset(self, seed=None):
        return 0, {}
    def step(self, actions):
        raise ValueError('boom')
    def render(self):
        return []

def create_env(config):
    return Boom()
"""


class Worker:
    """A Dispatcher plus the decoded messages it posted."""

    def __init__(self, installer=None):
        self.sent = []
        self.clock = itertools.count(1000, 5).__next__
        self.dispatcher = Dispatcher(self.sent.append, self.clock, installer=installer)

    def request(self, mid, mtype, **fields):
        return self.dispatcher.handle_text(json.dumps({"id": mid, "type": mtype, **fields}))

    def replies(self):
        out = []
        for text in self.sent:
            assert isinstance(text, str)
            out.append(m.decode(text))
        return out

    def last(self):
        return self.replies()[-1]


def test_announce_ready_posts_ready_with_id_zero():
    worker = Worker()
    worker.dispatcher.announce_ready()
    (ready,) = worker.replies()
    assert ready["id"] == m.READY_ID == 0
    assert ready["type"] == m.READY
    assert ready["runtime"] == "cpython"
    assert ready["python"] == sys.version.split()[0]
    assert ready["t_worker"] == 1000


def check_result(reply, mid, rtype, request, t_sent):
    assert reply["id"] == mid
    assert reply["type"] == rtype
    assert reply["request"] == request
    assert reply["t_sent"] == t_sent
    assert reply["t_worker_start"] <= reply["t_worker_end"]


def test_full_session_produces_matching_result_types():
    worker = Worker()
    assert worker.request(1, m.SET_GLOBALS, globals={"env_config": {"lives": 1}}, t_sent=11.5) is None
    check_result(worker.last(), 1, m.INIT_COMPLETE, m.SET_GLOBALS, 11.5)
    assert worker.last()["names"] == ["env_config"]

    assert worker.request(2, m.RUN_INIT_CODE, code=CATCH_SOURCE, t_sent=12) is None
    progress, loaded = worker.replies()[-2:]
    assert progress["type"] == m.PROGRESS and progress["id"] == m.READY_ID
    check_result(loaded, 2, m.INIT_COMPLETE, m.RUN_INIT_CODE, 12)
    assert loaded["loaded"] is True
    assert worker.dispatcher.host.env.lives_at_start == 1  # globals reached the env config

    worker.request(3, m.RESET, seed=5, t_sent=13)
    reset = worker.last()
    check_result(reset, 3, m.RESET_RESULT, m.RESET, 13)
    assert reset["frame"] == 0 and "render" in reset

    worker.request(4, m.STEP, actions={"p0": "left"}, t_sent=14)
    step = worker.last()
    check_result(step, 4, m.STEP_RESULT, m.STEP, 14)
    assert step["frame"] == 1 and step["done"] is False and "obs" not in step

    worker.request(5, m.BATCH, t_sent=15, ops=[
        {"op": "snapshot"}, {"op": "step", "actions": {"p0": "right"}}, {"op": "hash"},
        {"op": "restore", "frame": 1}, {"op": "step", "actions": {"p0": "right"}}, {"op": "hash"},
    ])
    batch = worker.last()
    check_result(batch, 5, m.BATCH_RESULT, m.BATCH, 15)
    results = batch["results"]
    assert [r["frame"] for r in results] == [1, 2, 2, 1, 2, 2]
    assert results[2]["hash"] == results[5]["hash"]

    # every reply is answered by the reply type Pending expects
    pending = m.Pending()
    for mtype in (m.SET_GLOBALS, m.RUN_INIT_CODE, m.RESET, m.STEP, m.BATCH):
        pending.open(mtype, 0)
    for reply in worker.replies():
        pending.close(reply)
    assert len(pending) == 0


def test_missing_t_sent_is_echoed_as_none():
    worker = Worker()
    worker.request(1, m.SET_GLOBALS, globals={})
    assert worker.last()["t_sent"] is None


def test_env_exception_becomes_error_reply():
    worker = Worker()
    worker.request(1, m.RUN_INIT_CODE, code=BOOM_ENV)
    worker.request(2, m.RESET)
    assert worker.last()["type"] == m.RESET_RESULT
    assert worker.request(9, m.STEP, actions={"p0": 0}) is None
    err = worker.last()
    assert err["type"] == m.ERROR
    assert err["id"] == 9
    assert err["error_type"] == "ValueError"
    assert err["message"] == "boom"
    assert "boom" in err["traceback"] and "Traceback" in err["traceback"]
    assert err["stage"] == m.STEP
    # the worker keeps answering after an error
    worker.request(10, m.RESET)
    assert worker.last()["type"] == m.RESET_RESULT and worker.last()["id"] == 10


def test_step_before_init_code_is_an_error_not_a_crash():
    worker = Worker()
    worker.request(3, m.STEP, actions={})
    err = worker.last()
    assert (err["id"], err["type"], err["error_type"]) == (3, m.ERROR, "EnvContractError")


def test_syntax_error_in_env_code_is_reported():
    worker = Worker()
    worker.request(4, m.RUN_INIT_CODE, code="def create_env(:\n", filename="env.py")
    err = worker.last()
    assert (err["id"], err["type"], err["error_type"]) == (4, m.ERROR, "SyntaxError")


@pytest.mark.parametrize("text", ["garbage", "", "[1, 2]", '{"id": "x", "type": "STEP"}',
                                  '{"id": 3, "type": "STEP"}', '{"id": 3, "type": "NOPE"}'])
def test_garbage_text_gets_protocol_error_with_id_zero(text):
    worker = Worker()
    assert worker.dispatcher.handle_text(text) is None
    (err,) = worker.replies()
    assert err["type"] == m.ERROR
    assert err["id"] == m.READY_ID
    assert err["error_type"] == "ProtocolError"


def test_batch_with_non_list_ops_gets_an_error_reply():
    # Known bug: validate() iterates "ops" unchecked, so a TypeError escapes handle_text
    # and the page never gets an answer (it would only notice via the BATCH timeout).
    worker = Worker()
    worker.dispatcher.handle_text('{"id": 6, "type": "BATCH", "ops": 5}')
    (err,) = worker.replies()
    assert err["type"] == m.ERROR and err["error_type"] == "ProtocolError"


@pytest.mark.parametrize("mtype", [m.STEP_RESULT, m.READY, m.ERROR, m.PROGRESS])
def test_response_type_sent_as_request_is_an_error(mtype):
    worker = Worker()
    fields = {f: "x" for f in m.REQUIRED[mtype]}
    assert worker.request(8, mtype, **fields) is None
    (err,) = worker.replies()
    assert err["type"] == m.ERROR and err["id"] == 8
    assert err["error_type"] == "ProtocolError"
    assert mtype in err["message"]


def test_install_packages_empty_list_completes_asynchronously():
    worker = Worker()
    coro = worker.request(5, m.INSTALL_PACKAGES, packages=[], t_sent=1)
    assert coro is not None and worker.sent == []  # nothing happens until it is run
    asyncio.run(coro)
    (done,) = worker.replies()
    check_result(done, 5, m.INIT_COMPLETE, m.INSTALL_PACKAGES, 1)
    assert done["installed"] == []


def test_install_packages_without_installer_is_an_error():
    worker = Worker()
    asyncio.run(worker.request(6, m.INSTALL_PACKAGES, packages=[{"name": "six", "url": "/pkgs/six.whl"}]))
    (err,) = worker.replies()
    assert err["type"] == m.ERROR and err["id"] == 6
    assert err["error_type"] == "RuntimeError"
    assert err["stage"] == m.INSTALL_PACKAGES


def test_install_packages_uses_installer_and_forwards_progress():
    seen = []

    async def installer(packages, options, progress):
        seen.append((packages, options))
        progress("installing", "half", 0.5)
        return [p["name"] for p in packages]

    worker = Worker(installer=installer)
    asyncio.run(worker.request(1, m.INIT, options={"ring_size": 4}))
    assert worker.dispatcher.host.ring_size == 4
    asyncio.run(worker.request(2, m.INSTALL_PACKAGES, packages=[{"name": "six", "url": "/six.whl"}]))
    init, progress, done = worker.replies()
    assert init["type"] == m.INIT_COMPLETE and init["id"] == 1
    assert progress["type"] == m.PROGRESS and progress["fraction"] == 0.5
    assert done["type"] == m.INIT_COMPLETE and done["installed"] == ["six"]
    assert seen == [([{"name": "six", "url": "/six.whl"}], {"ring_size": 4})]


def test_each_scene_env_in_its_own_slot_the_next_prepared_while_one_plays(tmp_path, monkeypatch):
    """One worker for the visit: the second scene's env (a multi-file env laid out from its
    experiment's files) loads while the first one plays; RESET with its slot switches."""
    root = ROOT / "experiments" / "study" / "maze"
    served = {f"/files/{p.name}": p.read_bytes() for p in root.iterdir() if p.is_file()}
    served.update({f"/files/maps/{p.name}": p.read_bytes() for p in (root / "maps").iterdir()})
    fetched = []

    async def fetcher(url):  # the files as the server serves them
        fetched.append(url)
        return served[url]

    import worker.dispatcher as d

    monkeypatch.setattr(d, "FILES_ROOT", str(tmp_path))  # the worker's file system root: a temp folder
    worker = Worker()
    worker.dispatcher.fetcher = fetcher
    worker.request(1, m.SET_GLOBALS, slot="catch", globals={"env_config": {}})
    worker.request(2, m.RUN_INIT_CODE, slot="catch", code=CATCH_SOURCE)
    worker.request(3, m.RESET, slot="catch", seed=1)
    assert worker.last()["type"] == m.RESET_RESULT
    files = [{"path": "maze/" + p, "url": "/files/" + p}
             for p in ("rules.py", "maps/open.txt", "maps/small.txt")]
    worker.request(4, m.SET_GLOBALS, slot="maze", globals={"env_config": {"map": "open.txt"}})
    asyncio.run(worker.request(5, m.RUN_INIT_CODE, slot="maze", code=served["/files/env.py"].decode(),
                               filename="maze/env.py", files=files, root="study"))
    assert worker.last()["type"] == m.INIT_COMPLETE, worker.last()
    worker.request(6, m.STEP, actions={"p0": "left"})  # still the catch env
    assert "pos" not in worker.last()["info"]
    worker.request(7, m.RESET, slot="maze", seed=1)
    worker.request(8, m.STEP, actions={"p0": "right"})
    assert worker.last()["info"] == {"pos": [2, 1]}
    assert sorted(worker.dispatcher.hosts) == ["maze"]  # the finished scene's env is gone
    # a later load of the same files fetches nothing again
    asyncio.run(worker.request(9, m.RUN_INIT_CODE, slot="maze2", code=served["/files/env.py"].decode(),
                               filename="maze/env.py", files=files, root="study"))
    assert len(fetched) == 3
    (tmp_path / "study" / "maze" / "rules.py").read_text()  # laid out like the experiment folder
    forget_search_path([str(tmp_path / "study" / "maze"), str(tmp_path / "study")])


def test_install_packages_installs_only_what_the_visit_does_not_have():
    calls = []

    async def installer(packages, options, progress):
        calls.append([p["name"] for p in packages])
        return [p["name"] for p in packages]

    worker = Worker(installer=installer)
    a = {"name": "a", "url": "/pkgs/a.whl"}
    b = {"name": "b", "url": "/pkgs/b.whl"}
    asyncio.run(worker.request(1, m.INSTALL_PACKAGES, packages=[a]))
    asyncio.run(worker.request(2, m.INSTALL_PACKAGES, packages=[a, b]))
    asyncio.run(worker.request(3, m.INSTALL_PACKAGES, packages=[a, b]))
    assert calls == [["a"], ["b"]]
    assert worker.last()["installed"] == [] and worker.last()["already"] == 2
