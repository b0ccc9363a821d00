"""Fuzz (issue 6, "Hostile input"): hypothesis-generated malformed events from many
clients at once against the real server, while a well-behaved two-player room plays.

The good room runs in its own thread (its own event loop) for the whole test: two
python-socketio clients play at 30 Hz (inputs with the page's redundancy, checkpoint
hashes, step uploads), then report final hashes computed by the server's own replay.
Meanwhile hypothesis drives rounds of hostile traffic from the main thread:

1. Socket.IO-level: each round, ten fresh clients send generated events — unknown names,
   known names with non-dict/binary payloads, wrong types, out-of-range numbers, oversized
   strings, forbidden extra fields, several arguments, schema-valid events they may not
   send (not in a room, another participant's episode, the reserved connect/disconnect) —
   plus connections with bad auth. Every such event is built to be refused, so each must
   get an error ack and a ``server_error``, and GET /stats must count exactly these.
2. Engine.IO-level: raw WebSocket frames (garbage, bad packets, NaN, huge nesting) that no
   client library would send; there is no ack to expect, only a server that stays up.

Then: the server process is alive, /healthz answers, the good room ended ``completed`` with
its final hashes equal to the replay, every input it sent is recorded and every step it
uploaded is stored, and it got no error."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import runpy
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

import aiohttp
import pytest
import socketio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from server.multiplayer.replay import replay
from tests.servers import ROOT, RunningServer, start_server, write_kitchen

KITCHEN_DEFINITION = runpy.run_path(str(ROOT / "experiments" / "kitchen" / "experiment.py"))["EXPERIMENT"]
KITCHEN_CONFIG = KITCHEN_DEFINITION["env_config"]
KITCHEN_SOURCE = (ROOT / "experiments" / "kitchen" / "env.py").read_text()
PLAYERS = ["p0", "p1"]
ACTIONS = ["noop", "up", "down", "left", "right", "interact"]
HOSTILE = 10
FPS = 30
MAX_STEPS = 1800

EVENTS = ["episode_start", "steps", "episode_end", "client_event", "mp_join", "input", "fetch_inputs",
          "state_hash", "rtt", "mp_leave", "mp_rejoin", "hello", "scene_done"]
RESERVED = ["connect", "disconnect"]


# -- strategies --------------------------------------------------------------------------------
# Floats are finite and integers fit in 64 bits: those are what a Socket.IO client can encode
# as JSON; NaN and huge numbers are malformed packets, fuzzed at the Engine.IO level below.

SCALARS = (st.none() | st.booleans() | st.integers(-(2**63) + 1, 2**63 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
JSONISH = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                       | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)
NESTED = st.integers(50, 400).map(lambda depth: json.loads("[" * depth + "]" * depth))
BIG_TEXT = st.integers(70_000, 300_000).map(lambda n: "x" * n)  # under max_payload_bytes (1 MB)
VALUES = JSONISH | st.binary(max_size=40) | NESTED

NOT_INT = st.none() | st.text(max_size=8) | st.lists(st.integers(), max_size=2) | st.dictionaries(
    st.text(max_size=3), st.integers(), max_size=2) | st.booleans()
BAD_FRAME = st.integers(max_value=-1) | st.integers(10_000_001, 2**63 - 1) | NOT_INT
NOT_NUMBER = (st.none() | st.text(max_size=8) | st.lists(st.floats(allow_nan=False), max_size=2)
              | st.booleans())
BAD_ID = (st.text(max_size=20).filter(lambda s: not s or not all(c.isalnum() and c.isascii() or c in "_.:-"
                                                                   for c in s))
          | st.integers(65, 5000).map(lambda n: "a" * n) | st.integers() | st.none())
BAD_HASH = st.text(max_size=20).filter(lambda s: len(s) != 16 or any(c not in "0123456789abcdef" for c in s))


def bad_literal(*allowed: str):
    return st.text(max_size=12).filter(lambda s: s not in allowed) | st.integers() | st.none()


# event -> (a valid payload, {field: values that make it invalid})
TEMPLATES: dict[str, tuple[dict, dict]] = {
    "input": ({"frame": 5, "inputs": [[5, "up"]], "adv": 0.0}, {
        "frame": BAD_FRAME,
        "inputs": st.just([]) | st.lists(st.just([6, "up"]), min_size=33, max_size=40)
        | st.lists(st.lists(st.integers(0, 9), max_size=3).filter(lambda pair: len(pair) != 2), min_size=1,
                   max_size=3)
        | st.tuples(BAD_FRAME, st.just("up")).map(lambda pair: [list(pair)]) | SCALARS,
        "adv": NOT_NUMBER | st.floats(100_001, 1e300) | st.floats(-1e300, -100_001)}),
    "state_hash": ({"frame": 30, "hash": "0123456789abcdef"}, {
        "frame": BAD_FRAME, "hash": BAD_HASH | st.none() | st.integers(),
        "final": st.none() | st.text(max_size=4) | st.integers()}),
    "fetch_inputs": ({"from_frame": 0}, {"from_frame": BAD_FRAME}),
    "rtt": ({"t": 1.5}, {"t": NOT_NUMBER}),
    "mp_join": ({"episode_id": "ep-hostile"}, {
        "episode_id": BAD_ID,
        "net": SCALARS.filter(lambda v: v is not None)
        | st.fixed_dictionaries({"delay_ms": st.floats(5000.5, 1e9) | st.floats(-1e9, -0.5)})
        | st.fixed_dictionaries({"drop": st.floats(0.91, 1e6)})}),
    "mp_leave": ({"reason": "left"}, {"reason": bad_literal("focus_lost", "left")}),
    "scene_done": ({"index": 0, "scene_id": "game-0"}, {
        "index": BAD_FRAME | st.integers(1001, 10**6),
        "scene_id": st.just("") | st.integers(41, 500).map(lambda n: "s" * n) | st.integers(),
        "outcome": st.text(min_size=1, max_size=10).filter(lambda s: not all("a" <= c <= "z" or c == "_"
                                                                            for c in s)),
        "answers": st.integers(201, 400).map(lambda n: {f"q{i}": i for i in range(n)})
        | st.dictionaries(st.text(max_size=4), st.lists(st.integers(), max_size=2) | st.none(), min_size=1,
                          max_size=3)}),
    "episode_start": ({"episode_id": "ep-hostile", "seed": 1}, {
        "episode_id": BAD_ID, "seed": st.integers(2**63, 2**64 - 1) | st.text(max_size=5),
        "client": SCALARS.filter(lambda v: v is not None) | BIG_TEXT.map(lambda s: {"junk": s})}),
    "episode_end": ({"episode_id": "ep-hostile", "status": "completed", "frames": 1}, {
        "status": bad_literal("completed", "error", "abandoned"), "frames": BAD_FRAME,
        "total_reward": NOT_NUMBER}),
    "steps": ({"episode_id": "ep-hostile", "records": [{"frame": 1, "actions": {"p0": "up"}}]}, {
        "episode_id": BAD_ID,
        "records": SCALARS | st.lists(st.just({"frame": 1, "actions": {}}), min_size=2001, max_size=2001)
        | BAD_FRAME.map(lambda f: [{"frame": f, "actions": {}}])
        | SCALARS.map(lambda a: [{"frame": 1, "actions": a}]).filter(lambda r: not isinstance(r[0]["actions"],
                                                                                              dict))}),
    "client_event": ({"kind": "page_error", "detail": {}}, {
        "kind": bad_literal("worker_error", "page_error", "stage", "focus"),
        "detail": SCALARS.filter(lambda v: v is not None) | BIG_TEXT.map(lambda s: {"junk": s}),
        "episode_id": st.integers() | st.lists(st.text(max_size=3), max_size=2)}),
}


@st.composite
def wrong_field(draw) -> tuple[str, tuple]:
    """A valid payload with one field given a wrong type or an out-of-range value."""
    event = draw(st.sampled_from(sorted(TEMPLATES)))
    valid, bad = TEMPLATES[event]
    name = draw(st.sampled_from(sorted(bad)))
    return event, ({**valid, name: draw(bad[name])},)


@st.composite
def extra_field(draw) -> tuple[str, tuple]:
    """A payload with a field no schema has (a player or room id, say): always refused."""
    event = draw(st.sampled_from(sorted(TEMPLATES) + ["hello"]))
    valid = TEMPLATES[event][0] if event in TEMPLATES else {}
    key = draw(st.sampled_from(["player", "room", "sid", "participant_id"]) | st.text(max_size=8).map(
        lambda s: "zz_" + s))
    return event, ({**valid, key: draw(VALUES)},)


def not_a_json_object(value: Any) -> bool:
    if not isinstance(value, str):
        return not isinstance(value, dict)
    try:
        return not isinstance(json.loads(value), dict)
    except ValueError:
        return True


@st.composite
def semantically_refused(draw, good_episodes: list[str]) -> tuple[str, tuple]:
    """Schema-valid, but not this client's to send: it is in no room, the episodes are
    another participant's, connect/disconnect are the server's own events."""
    kind = draw(st.sampled_from(["input", "state_hash", "fetch_inputs", "steps", "episode_end",
                                 "episode_start", "reserved"]))
    frame = draw(st.integers(0, 10_000_000))
    episode = draw(st.sampled_from(good_episodes))
    if kind == "input":
        return kind, ({"frame": frame, "inputs": [[frame, draw(st.sampled_from(ACTIONS))]], "adv": 0.0},)
    if kind == "state_hash":
        return kind, ({"frame": frame, "hash": "0123456789abcdef", "final": draw(st.booleans())},)
    if kind == "fetch_inputs":
        return kind, ({"from_frame": frame},)
    if kind == "steps":
        return kind, ({"episode_id": episode, "records": [{"frame": frame, "actions": {"p0": "up"}}]},)
    if kind == "episode_end":
        return kind, ({"episode_id": episode, "status": "abandoned", "frames": 0},)
    if kind == "episode_start":
        return kind, ({"episode_id": episode, "seed": 1},)
    return draw(st.sampled_from(RESERVED)), tuple(draw(st.lists(VALUES, max_size=3)))


def hostile_event(good_episodes: list[str]):
    known = st.sampled_from(EVENTS)
    unknown = st.text(max_size=30).filter(lambda s: s not in EVENTS + RESERVED + ["*"])
    return st.one_of(
        st.tuples(unknown, st.lists(VALUES, max_size=2).map(tuple)),
        st.tuples(known, VALUES.filter(not_a_json_object).map(lambda v: (v,))),  # non-dict, binary, text
        st.tuples(known, st.just(())),  # no payload at all
        st.tuples(known | st.sampled_from(RESERVED), st.lists(VALUES, min_size=2, max_size=4).map(tuple)),
        st.tuples(st.sampled_from(["client_event", "episode_start"]),
                  BIG_TEXT.map(lambda s: ({"detail": s},))),
        wrong_field(), extra_field(), semantically_refused(good_episodes),
    )


BAD_AUTH = st.one_of(
    st.fixed_dictionaries({"participant_id": BAD_ID, "experiment": st.just("kitchen")}),
    st.fixed_dictionaries({"participant_id": st.just("p-ok"), "experiment": st.text(max_size=10).filter(
        lambda s: s != "kitchen")}),
    st.fixed_dictionaries({"participant_id": st.just("p-ok"), "experiment": st.just("kitchen"),
                           "role": JSONISH}),
    st.dictionaries(st.text(max_size=8), JSONISH, max_size=3).filter(lambda d: "participant_id" not in d),
    st.text(max_size=10) | st.integers() | st.lists(st.integers(), max_size=2),
)

RAW_FRAMES = st.one_of(
    st.text(max_size=80).map(lambda t: "42" + t),  # socket.io events of any shape
    st.text(max_size=40).map(lambda t: "4" + t),  # any socket.io packet
    st.text(max_size=20),  # any engine.io packet
    st.binary(max_size=60),
    st.sampled_from([
        "42[]", "42{}", '42"input"', "42[1]", '42[["input"]]', '42["*",{}]', '42["rtt",{"t":NaN}]',
        '42["rtt",{"t":Infinity}]', '42["input",' + "9" * 5000 + "]", "42" + "[" * 20_000,
        '42["connect",{"participant_id":"x","experiment":"kitchen"}]', '42["disconnect"]', "49", "4x",
        '451-["steps",{"_placeholder":true,"num":0}]', '45999999-["steps",{"_placeholder":true,"num":9}]',
        '43999["rtt"]', "41", '40{"participant_id":"again","experiment":"kitchen"}', "6", "3", "5",
    ]),
)


# -- the good room ------------------------------------------------------------------------------

class GoodRoom:
    """Two well-behaved players at 30 Hz, as the pages play (inputs repeated 8 times,
    checkpoint hashes, step uploads every 30 frames), in their own thread.

    Its result counts what became of p0's inputs, whose relay to p1 gives ``latency_ms``:
    ``inputs_sent``, ``inputs_refused`` (an error ack) and ``lost`` (neither relayed nor
    refused); ``refused`` lists every error ack of the room (any event) and ``unanswered``
    the events never acknowledged within 30 s. It asserts none of them: the test does, and
    the benchmark (bench/fuzz.py) reports them beside the latency."""

    def __init__(self, url: str, min_frames: int = 300, max_frames: int = 1500, tag: str = "good"):
        self.url = url
        self.min_frames = min_frames
        self.max_frames = max_frames
        self.tag = f"{tag}-{time.time_ns()}"
        self.episodes = [f"ep-{self.tag}-{p}" for p in PLAYERS]
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.result: dict = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> GoodRoom:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError(f"the good room did not start: {self.error!r}")
        return self

    def finish(self, timeout: float = 90) -> dict:
        self.stop.set()
        self.thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert not self.thread.is_alive(), "the good room did not finish"
        return self.result

    def _run(self) -> None:
        try:
            self.result = asyncio.run(self._play())
        except BaseException as exc:  # reported by finish()
            self.error = exc
            self.ready.set()

    async def _play(self) -> dict:
        loop = asyncio.get_running_loop()
        clients = [socketio.AsyncClient(reconnection=False, handle_sigint=False) for _ in PLAYERS]
        starts: list[asyncio.Future] = [loop.create_future() for _ in PLAYERS]
        results: list[asyncio.Future] = [loop.create_future() for _ in PLAYERS]
        errors: list[Any] = []
        arrivals: dict[int, float] = {}
        for i, c in enumerate(clients):
            c.on("room_start", lambda data, fut=starts[i]: fut.done() or fut.set_result(data))
            c.on("room_result", lambda data, fut=results[i]: fut.done() or fut.set_result(data))
            c.on("server_error", errors.append)
            c.on("desync", errors.append)
            await c.connect(self.url, auth={"participant_id": f"{self.tag}-{i}", "experiment": "kitchen"},
                            transports=["websocket"], wait_timeout=10)
        clients[1].on("input", lambda m: m["player"] == "p0" and arrivals.setdefault(m["frame"],
                                                                                      time.perf_counter()))
        try:
            assert (await clients[0].call("mp_join", {"episode_id": self.episodes[0]}))["status"] == "waiting"
            assert (await clients[1].call("mp_join", {"episode_id": self.episodes[1]}))["status"] == "matched"
            start = (await asyncio.wait_for(asyncio.gather(*starts), 10))[0]
            seed, room = start["seed"], start["room"]
            for c, episode in zip(clients, self.episodes, strict=True):
                ack = await c.call("episode_start", {"episode_id": episode, "seed": seed})
                assert ack["ok"], ack
            self.ready.set()

            rng = random.Random(seed)
            sent: dict[str, dict[int, str]] = {p: {} for p in PLAYERS}
            recent: dict[str, list] = {p: [] for p in PLAYERS}
            acks: list[tuple[str, asyncio.Future]] = []
            sent_at: dict[int, float] = {}
            uploaded = 0

            measured: dict[int, asyncio.Future] = {}  # p0's input acks, by frame

            async def emit(c: socketio.AsyncClient, event: str, data: dict) -> asyncio.Future:
                fut = loop.create_future()
                acks.append((event, fut))
                await c.emit(event, data, callback=lambda *a, fut=fut: fut.done() or fut.set_result(a[0]))
                return fut

            t0 = loop.time()
            tick = 0
            while tick < self.max_frames and not (tick >= self.min_frames and self.stop.is_set()):
                await asyncio.sleep(max(0.0, t0 + tick / FPS - loop.time()))
                frame = tick + 2  # input delay 2: the input made at frame `tick` is for `tick + 2`
                for c, p in zip(clients, PLAYERS, strict=True):
                    value = rng.choice(ACTIONS)
                    sent[p][frame] = value
                    recent[p] = (recent[p] + [[frame, value]])[-8:]
                    if p == "p0":
                        sent_at[frame] = time.perf_counter()
                    fut = await emit(c, "input", {"frame": frame, "inputs": recent[p], "adv": 0.0})
                    if p == "p0":
                        measured[frame] = fut
                if frame % 30 == 0:
                    for c, episode in zip(clients, self.episodes, strict=True):
                        await emit(c, "state_hash", {"frame": frame, "hash": "00000000000000aa"})
                        records = [{"frame": f, "actions": {p: sent[p].get(f, "noop") for p in PLAYERS}}
                                   for f in range(frame - 30, frame)]
                        await emit(c, "steps", {"episode_id": episode, "records": records})
                    uploaded = frame
                tick += 1
            last = tick + 1  # the last frame with inputs
            if acks:
                await asyncio.wait([fut for _, fut in acks], timeout=30)

            def refusal(fut: asyncio.Future) -> bool:
                return fut.done() and not (isinstance(fut.result(), dict) and fut.result().get("ok"))

            refused = [(event, fut.result()) for event, fut in acks if refusal(fut)]
            unanswered = [event for event, fut in acks if not fut.done()]
            inputs_refused = {f for f, fut in measured.items() if refusal(fut)}

            expected = (await asyncio.to_thread(replay, KITCHEN_SOURCE, KITCHEN_CONFIG, PLAYERS, seed, sent,
                                                last, "noop"))["hash"]
            for c in clients:
                ack = await c.call("state_hash", {"frame": last + 1, "hash": expected, "final": True})
                assert ack == {"ok": True}, ack
            outcome = await asyncio.wait_for(asyncio.gather(*results), 30)
            for c, episode in zip(clients, self.episodes, strict=True):
                ack = await c.call("episode_end", {"episode_id": episode, "status": "completed",
                                                   "frames": uploaded})
                assert ack == {"ok": True}, ack
            latency = [(arrivals[f] - t) * 1000 for f, t in sent_at.items() if f in arrivals]
            return {"room": room, "seed": seed, "sent": sent, "end_frame": last, "expected": expected,
                    "outcome": outcome, "uploaded": uploaded, "errors": errors, "latency_ms": latency,
                    "inputs_sent": len(sent_at), "inputs_refused": len(inputs_refused),
                    "lost": sum(1 for f in sent_at if f not in arrivals and f not in inputs_refused),
                    "refused": refused, "unanswered": unanswered, "frames": tick}
        finally:
            for c in clients:
                with contextlib.suppress(Exception):
                    await c.disconnect()


# -- hostile rounds -----------------------------------------------------------------------------

_ids = itertools.count(1)


async def hostile_round(url: str, plans: list[list[tuple[str, tuple]]], auths: list[Any]) -> dict:
    """Each plan is sent by its own fresh client, all at once; returns what came back."""

    async def one(plan: list[tuple[str, tuple]]) -> dict:
        c = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        errors: list = []
        c.on("server_error", errors.append)
        await c.connect(url, auth={"participant_id": f"hostile-{next(_ids)}", "experiment": "kitchen"},
                        transports=["websocket"], wait_timeout=10)
        loop = asyncio.get_running_loop()
        futs = []
        try:
            for event, args in plan:
                fut = loop.create_future()
                futs.append(fut)
                await c.emit(event, args, callback=lambda *a, fut=fut: fut.done() or fut.set_result(a))
            answers = await asyncio.wait_for(asyncio.gather(*futs), 20)
            deadline = time.monotonic() + 5
            while len(errors) < len(plan) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return {"plan": plan, "answers": answers, "errors": errors, "connected": c.connected}
        finally:
            await c.disconnect()

    async def refused_auth(auth: Any) -> str | None:
        c = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        messages: list = []
        c.on("connect_error", messages.append)
        try:
            await c.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            return str(messages[0].get("message")) if messages and isinstance(messages[0], dict) else "?"
        await c.disconnect()
        return None

    sent = await asyncio.gather(*(one(plan) for plan in plans))
    refusals = await asyncio.gather(*(refused_auth(a) for a in auths))
    return {"clients": sent, "auth_refusals": refusals}


async def raw_round(url: str, frames: list[Any]) -> int:
    """Send raw frames over a fresh WebSocket (after a proper connect); returns how many went
    out before the server closed it. A closed socket is fine; a dead server is not."""
    ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    went = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        await ws.receive_str(timeout=5)
        await ws.send_str(f'40{{"participant_id":"raw-{next(_ids)}","experiment":"kitchen"}}')
        await ws.receive(timeout=5)
        for frame in frames:
            if ws.closed:
                break
            with contextlib.suppress(ConnectionError, RuntimeError):
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
                went += 1
        await asyncio.sleep(0.05)
    return went


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


# -- the test -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> RunningServer:
    workdir = tmp_path_factory.mktemp("fuzz")
    write_kitchen(workdir / "experiments", max_steps=MAX_STEPS, env_config=KITCHEN_CONFIG)
    # Engine.IO garbage leaves its session to the ping timeout (python-engineio raises out of its
    # reader without closing): short pings reap those within seconds here
    running = start_server(workdir, experiments_dir=workdir / "experiments",
                           extra_args=["--ping-interval", "1", "--ping-timeout", "2"])
    try:
        yield running
    finally:
        running.stop()


def fuzz_settings(rounds: int) -> settings:
    return settings(max_examples=rounds, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],  # no shrinking: each round is a server run
                    suppress_health_check=list(HealthCheck))


def test_fuzzed_clients_cannot_crash_the_server_or_touch_a_playing_room(fuzz_server):
    server = fuzz_server
    good = GoodRoom(server.url).start()
    before = get_json(server.url + "/stats")
    totals: Counter[str] = Counter()
    problems: list[str] = []

    @fuzz_settings(25)
    @given(plans=st.lists(st.lists(hostile_event(good.episodes), min_size=1, max_size=25),
                          min_size=HOSTILE, max_size=HOSTILE),
           auths=st.lists(BAD_AUTH, max_size=2))
    def socketio_round(plans, auths):
        out = asyncio.run(hostile_round(server.url, plans, auths))
        for client in out["clients"]:
            for (event, args), answer in zip(client["plan"], client["answers"], strict=True):
                ack = answer[0] if answer else None
                totals["events"] += 1
                if not (isinstance(ack, dict) and ack.get("ok") is False and isinstance(ack.get("error"), str)
                        and ack["error"]):
                    problems.append(f"{event!r} {str(args)[:200]} was answered {str(ack)[:200]}")
            if len(client["errors"]) != len(client["plan"]):
                problems.append(f"{len(client['plan'])} events, {len(client['errors'])} server_error events")
            acked = [a[0]["error"] for a in client["answers"]
                     if a and isinstance(a[0], dict) and "error" in a[0]]
            if sorted(acked) != sorted(e.get("error") for e in client["errors"]):
                problems.append("server_error events differ from the error acks")
            totals["rate_limited"] += sum(e == "rate limited" for e in acked)
            totals["disconnected"] += not client["connected"]
        for auth, refusal in zip(auths, out["auth_refusals"], strict=True):
            totals["bad_auth"] += 1
            if refusal is None:
                problems.append(f"auth {auth!r} was accepted")
        assert not problems, problems[:10]
        assert get_json(server.url + "/healthz")["ok"]

    @fuzz_settings(10)
    @given(frames=st.lists(st.lists(RAW_FRAMES, min_size=1, max_size=30), min_size=2, max_size=2))
    def raw_round_of(frames):
        for batch in frames:
            totals["raw_frames"] += asyncio.run(raw_round(server.url, batch))
        assert server.process.poll() is None, server.log()[-3000:]
        assert get_json(server.url + "/healthz")["ok"]

    try:
        socketio_round()
        middle = get_json(server.url + "/stats")
        raw_round_of()
    finally:
        result = good.finish()

    print(f"fuzz: {dict(totals)}; counted {middle['rejections']}; good room {result.get('frames')} frames")
    # nothing crashed
    assert server.process.poll() is None, server.log()[-3000:]
    assert get_json(server.url + "/healthz")["ok"]
    # every hostile event was refused and counted: exactly these, nothing of the good room
    counted = middle["rejected"] - before["rejected"]
    assert counted == totals["events"] + totals["bad_auth"], (counted, totals, middle["rejections"])
    assert totals["events"] > 800 and totals["disconnected"] == 0, totals
    grown = {r for r, n in middle["rejections"].items() if n != before["rejections"].get(r, 0)}
    assert {"validation", "unknown_event", "not_in_room", "spoof", "oversized", "bad_auth"} <= grown, grown
    after = get_json(server.url + "/stats")
    assert after["rejections"].get("malformed", 0) > before["rejections"].get("malformed", 0)
    deadline = time.monotonic() + 10
    while after["connections"] and time.monotonic() < deadline:  # every connection is let go
        time.sleep(0.2)
        after = get_json(server.url + "/stats")
    assert after["connections"] == 0, after

    # the good room played through all of it, and its data is whole
    assert result["refused"] == [] and result["unanswered"] == [], (result["refused"][:5],
                                                                    result["unanswered"][:5])
    assert result["errors"] == [] and result["lost"] == 0, result["errors"][:5]
    assert result["frames"] >= 300
    last, expected = result["end_frame"], result["expected"]
    assert result["outcome"] == [{"status": "completed", "final_hashes": {"p0": expected, "p1": expected},
                                  "replay_hash": expected, "end_frame": last}] * 2
    status, inputs, desyncs, replay_hash = server.query(
        "SELECT status, inputs, desyncs, replay_hash FROM rooms WHERE id=?", result["room"])[0]
    assert (status, replay_hash) == ("completed", expected)
    assert json.loads(desyncs) == []
    assert json.loads(inputs) == {p: {str(f): v for f, v in rec.items()} for p, rec in result["sent"].items()}
    for episode in good.episodes:
        stored = server.query("SELECT count(*) FROM steps WHERE episode_id=?", episode)
        assert stored == [(result["uploaded"],)]
        assert server.query("SELECT status, frames FROM episodes WHERE id=?", episode) == [
            ("completed", result["uploaded"])]
    hostile_rooms = server.query("SELECT count(*) FROM rooms WHERE id != ?", result["room"])
    assert hostile_rooms == [(0,)]  # no hostile client ever got into a room
