"""protocol/messages.py: encoding, validation and the Pending request book-keeping."""

import json

import pytest

from protocol import messages as m

# One valid example of the required fields of every message type.
REQUIRED_EXAMPLES = {
    m.INIT: {},
    m.INSTALL_PACKAGES: {"packages": [{"name": "six", "url": "/pkgs/six.whl"}]},
    m.SET_GLOBALS: {"globals": {"env_config": {"lives": 3}}},
    m.RUN_INIT_CODE: {"code": "def create_env(c):\n    return None\n"},
    m.STEP: {"actions": {"p0": "left"}},
    m.RESET: {},
    m.BATCH: {"ops": [{"op": "snapshot"}, {"op": "step", "actions": {"p0": 1}}, {"op": "hash"}]},
    m.READY: {},
    m.INIT_COMPLETE: {},
    m.STEP_RESULT: {},
    m.RESET_RESULT: {},
    m.BATCH_RESULT: {"results": [{"frame": 1}]},
    m.PROGRESS: {"stage": "installing", "message": "Installing six", "fraction": 0.5},
    m.ERROR: {"error_type": "ValueError", "message": "boom"},
}


def test_examples_cover_every_message_type():
    assert set(REQUIRED_EXAMPLES) == set(m.REQUESTS) | set(m.RESPONSES) == set(m.REQUIRED)


@pytest.mark.parametrize("mtype", sorted(REQUIRED_EXAMPLES))
def test_encode_decode_round_trip(mtype):
    msg = m.make(7, mtype, REQUIRED_EXAMPLES[mtype])
    text = m.encode(msg)
    assert isinstance(text, str)
    back = m.decode(text)
    assert back == {"id": 7, "type": mtype, **REQUIRED_EXAMPLES[mtype]}


@pytest.mark.parametrize("mtype", sorted(t for t in REQUIRED_EXAMPLES if m.REQUIRED[t]))
def test_missing_required_field_is_rejected(mtype):
    for field in m.REQUIRED[mtype]:
        fields = dict(REQUIRED_EXAMPLES[mtype])
        del fields[field]
        with pytest.raises(m.ProtocolError, match=repr(field)):
            m.validate({"id": 1, "type": mtype, **fields})


@pytest.mark.parametrize("msg", [None, [], "STEP", 3, [{"id": 1, "type": "STEP"}]])
def test_non_dict_is_rejected(msg):
    with pytest.raises(m.ProtocolError, match="must be an object"):
        m.validate(msg)


@pytest.mark.parametrize("mid", [True, False, -1, "1", None, 1.0])
def test_bad_ids_are_rejected(mid):
    with pytest.raises(m.ProtocolError, match="id"):
        m.validate({"id": mid, "type": m.RESET})


def test_id_zero_is_valid():
    assert m.validate({"id": 0, "type": m.READY}) == {"id": 0, "type": m.READY}


@pytest.mark.parametrize("mtype", ["step", "NOPE", None, 3])
def test_unknown_type_is_rejected(mtype):
    with pytest.raises(m.ProtocolError, match="unknown message type"):
        m.validate({"id": 1, "type": mtype})


@pytest.mark.parametrize("op", [{"op": "explode"}, {"frame": 3}, "step", None, ["step"]])
def test_bad_batch_op_is_rejected(op):
    with pytest.raises(m.ProtocolError, match="bad BATCH op"):
        m.validate({"id": 1, "type": m.BATCH, "ops": [{"op": "snapshot"}, op]})


@pytest.mark.parametrize("ops", [5, None, {"op": "step"}])
def test_batch_ops_that_are_not_a_list_raise_protocol_error(ops):
    # A non-list "ops" must be a ProtocolError like every other malformed message;
    # a bare TypeError escapes Dispatcher.handle_text and the request is never answered.
    with pytest.raises(m.ProtocolError):
        m.validate({"id": 1, "type": m.BATCH, "ops": ops})


@pytest.mark.parametrize("text", ["", "not json", "{'id': 1}", '{"id": 1,', "NaN"])
def test_decode_rejects_non_json_and_non_objects(text):
    with pytest.raises(m.ProtocolError):
        m.decode(text)


def test_encode_rejects_invalid_messages():
    with pytest.raises(m.ProtocolError):
        m.encode({"id": 1, "type": m.STEP})  # no actions


def test_error_and_progress_helpers():
    err = m.decode(m.encode(m.error(4, "ValueError", "boom", "tb", stage="STEP")))
    assert err == {"id": 4, "type": m.ERROR, "error_type": "ValueError", "message": "boom",
                   "traceback": "tb", "stage": "STEP"}
    prog = m.progress("installing", "half way", 0.5)
    assert prog["id"] == m.READY_ID and prog["type"] == m.PROGRESS and prog["fraction"] == 0.5
    assert json.loads(m.encode(prog)) == prog


# -- Pending ------------------------------------------------------------------

def test_pending_ids_increase_from_one():
    pending = m.Pending()
    ids = [pending.open(t, 0) for t in (m.INIT, m.STEP, m.STEP, m.BATCH)]
    assert ids == [1, 2, 3, 4]
    assert len(pending) == 4
    assert pending.describe(2) == m.STEP
    assert pending.describe(99) is None


@pytest.mark.parametrize("request_type", m.REQUESTS)
def test_close_matches_reply_type(request_type):
    pending = m.Pending()
    mid = pending.open(request_type, 0)
    reply = {"id": mid, "type": m.RESULT_FOR[request_type]}
    assert pending.close(reply) == request_type
    assert len(pending) == 0
    assert pending.close(reply) is None  # second reply for the same id is stale


def test_close_raises_on_mismatched_reply_type():
    pending = m.Pending()
    mid = pending.open(m.STEP, 0)
    with pytest.raises(m.ProtocolError, match="answered with " + m.RESET_RESULT):
        pending.close({"id": mid, "type": m.RESET_RESULT})
    with pytest.raises(m.ProtocolError):
        pending.close({"id": mid, "type": m.INIT_COMPLETE})
    # the request stays open and can still be answered correctly
    assert pending.close({"id": mid, "type": m.STEP_RESULT}) == m.STEP


@pytest.mark.parametrize("request_type", m.REQUESTS)
def test_error_closes_any_request(request_type):
    pending = m.Pending()
    mid = pending.open(request_type, 0)
    assert pending.close({"id": mid, "type": m.ERROR}) == request_type
    assert len(pending) == 0


def test_progress_ready_and_unknown_ids_return_none():
    pending = m.Pending()
    mid = pending.open(m.STEP, 0)
    assert pending.close({"id": mid, "type": m.PROGRESS}) is None
    assert pending.close({"id": mid, "type": m.READY}) is None
    assert pending.close({"id": 0, "type": m.READY}) is None
    assert pending.close({"id": 42, "type": m.STEP_RESULT}) is None
    assert pending.close({"id": 42, "type": m.ERROR}) is None
    assert len(pending) == 1  # none of them closed the open STEP


def test_expired_uses_default_per_type_timeouts():
    pending = m.Pending()
    init = pending.open(m.INIT, 1000)      # deadline 61000
    step = pending.open(m.STEP, 1000)      # deadline 4000
    install = pending.open(m.INSTALL_PACKAGES, 1000)  # deadline 181000
    assert pending.expired(3999) == []
    assert pending.expired(4000) == [step]
    assert pending.expired(61000) == [init, step]
    assert pending.expired(181000) == [init, step, install]
    assert len(pending) == 3  # expired() reports, it does not close


def test_custom_timeouts_override_defaults():
    pending = m.Pending({m.STEP: 50, m.RESET: 20000})
    assert pending.timeouts[m.BATCH] == m.DEFAULT_TIMEOUTS_MS[m.BATCH]
    step = pending.open(m.STEP, 0)
    reset = pending.open(m.RESET, 0)
    batch = pending.open(m.BATCH, 0)
    assert pending.expired(49) == []
    assert pending.expired(50) == [step]
    assert pending.expired(3000) == [step, batch]
    assert pending.expired(10000) == [step, batch]  # RESET default (10000) was overridden
    assert pending.expired(20000) == [step, reset, batch]
    assert m.DEFAULT_TIMEOUTS_MS[m.STEP] == 3000  # defaults are not mutated


def test_expired_lists_oldest_first_even_when_later_requests_expire_first():
    pending = m.Pending()
    ids = [pending.open(m.RESET, 0), pending.open(m.STEP, 100), pending.open(m.BATCH, 200)]
    assert pending.expired(100000) == ids
    pending.close({"id": ids[1], "type": m.STEP_RESULT})
    assert pending.expired(100000) == [ids[0], ids[2]]


def test_drain_empties_and_returns_ids():
    pending = m.Pending()
    ids = [pending.open(m.STEP, 0) for _ in range(3)]
    assert pending.drain() == ids
    assert len(pending) == 0
    assert pending.expired(10**9) == []
    assert pending.close({"id": ids[0], "type": m.STEP_RESULT}) is None
    assert pending.open(m.STEP, 0) == 4  # ids are never reused
