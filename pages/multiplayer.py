"""A multiplayer episode: waiting room, then GGPO-style rollback. Every browser runs
the env in its own worker; inputs travel through the server's relay; RollbackSession
(pages/netcode.py) decides, and each tick becomes at most one BATCH round trip."""

import asyncio

import js

from pages.clock import WorkerClock
from pages.jsbridge import log, new_id, now_ms, sleep_ms, try_set_item, wait_on
from pages.netcode import InputConflict, RollbackSession
from pages.outbox import Uploader
from pages.ping import median_ping_ms, shaped_ping_ms
from pages.vitals import RttMeter, excluded_result
from protocol import messages as m

REDUNDANT_INPUTS = 8  # each input message repeats the last few, so one lost message costs nothing
CATCH_UP_FRAMES = 300  # frames per BATCH while a reloaded page rebuilds the game
MATCH_PINGS = 5  # round trips measured before joining, with latency-aware matching


# -- a reload never costs a game: the seat's token is kept for the tab's participant ------
def _seat_key(experiment, scene_id):
    return "coplay:seat:" + experiment + ":" + scene_id


def keep_seat(experiment, scene_id, room, episode_index):
    import json

    record = {"token": room["token"], "room": room["room"], "episode_index": episode_index}
    try_set_item(js.window.localStorage, _seat_key(experiment, scene_id), json.dumps(record))


def kept_seat(experiment, scene_id):
    """The seat this participant held in this scene before the page was reloaded, if any."""
    import json

    text = js.window.localStorage.getItem(_seat_key(experiment, scene_id))
    if text is None:
        return None
    try:
        return json.loads(str(text))
    except ValueError:
        return None


def forget_seat(experiment, scene_id):
    js.window.localStorage.removeItem(_seat_key(experiment, scene_id))


def url_network():
    search = js.URLSearchParams.new(js.window.location.search)
    if search.get("delay") is None and search.get("jitter") is None and search.get("drop") is None:
        return None
    def num(name):
        value = search.get(name)
        return float(value) if value is not None else 0.0
    return {"delay_ms": num("delay"), "jitter_ms": num("jitter"), "drop": num("drop")}


class RoomEvents:
    """Socket.IO events of the room, turned into state the game loop polls."""

    def __init__(self, socket, ui):
        self.ui = ui
        self.room = None
        self.timed_out = None
        self.partner_left = None
        self.result = None
        self.desyncs = 0
        self.session = None
        self.conflicts = 0
        self.hidden_since = None
        self.seated = True  # False from a dropped connection until the server gave the seat back
        self.rejoins = 0
        self._room_waiters = []
        socket.on("waiting", self.on_waiting)
        socket.on("room_start", self.on_room_start)
        socket.on("wait_timeout", self.on_wait_timeout)
        socket.on("input", self.on_input)
        socket.on("desync", self.on_desync)
        socket.on("partner_left", self.on_partner_left)
        socket.on("room_result", self.on_room_result)
        socket.on("partner_away", self.on_partner_away)
        socket.on("partner_back", self.on_partner_back)
        socket.on("partner_replaced", self.on_partner_replaced)
        socket.on("ai_host", self.on_ai_host)
        self.ai_actions = {}  # hosted AI seat -> its latest decision (from the worker)
        self.to_host = []  # AI seats handed to this browser, not yet told to the worker

    def on_waiting(self, msg):
        if self.room is None:
            self.ui.message("Waiting for partner… " + str(msg["count"]) + "/" + str(msg["size"]))

    def _wake(self):
        for resolve in self._room_waiters:
            resolve(True)
        self._room_waiters = []

    def on_room_start(self, msg):
        self.room = msg
        self._wake()

    def on_wait_timeout(self, msg):
        self.timed_out = msg
        self._wake()

    async def wait_for_room(self):
        if self.room is None and self.timed_out is None:
            await wait_on(self._room_waiters)
        return self.room

    def on_input(self, msg):
        if self.session is None:
            return
        try:
            for frame, value in msg["inputs"]:
                self.session.remote_input(msg["player"], frame, value, msg["frame"], msg.get("adv"))
        except InputConflict as exc:
            self.conflicts += 1
            log("input conflict:", exc)

    def on_desync(self, msg):
        self.desyncs += 1
        self.ui.attr("desyncs", self.desyncs)
        log("desync reported by the server:", msg)

    def on_partner_left(self, msg):
        self.partner_left = msg

    def on_partner_away(self, msg):
        self.ui.attr("partner", "reconnecting")
        self.ui.message("Partner reconnecting…", True)

    def on_partner_back(self, msg):
        self.ui.attr("partner", "back")
        self.ui.playing()

    def on_partner_replaced(self, msg):
        self.ui.attr("partner", "stand_in")
        self.ui.playing()
        self.ui.hud("Your partner left; the computer plays for them now.")

    def on_ai_host(self, msg):
        """An AI seat (or a dropped person's seat played by the stand-in policy) has a new
        host; when it is this browser, its inputs are made here from now on."""
        if self.room is None or msg["host"] != self.room["player"]:
            return
        self.to_host.append(msg)

    def on_room_result(self, msg):
        self.result = msg
        self.ui.attr("room-status", msg["status"])
        self.ui.attr("replay-hash", msg["replay_hash"] or "")
        if msg.get("replay_error"):  # the server could not replay the room: unverified, not a desync
            self.ui.attr("replay-error", msg["replay_error"])


async def reclaim_seat(socket, ui, experiment, scene_id):
    """After a reload: take the seat this participant held back (by its token), with the
    room's record so far. None when there is no such seat any more."""
    kept = kept_seat(experiment, scene_id)
    if kept is None:
        return None
    ui.set_stage("resuming")
    ui.message("Rejoining your game…")
    ack = await socket.call("mp_rejoin", {"token": kept["token"], "inputs": [], "from_frame": 0,
                                          "reload": True})
    if not ack.get("ok"):
        log("could not take the seat back after the reload:", ack.get("error"))
        forget_seat(experiment, scene_id)
        return None
    ack["episode_index"] = kept["episode_index"]
    return ack


async def play_multiplayer(game, episode_info, channel, ctx, ui, resumed=None):
    """One multiplayer episode of a game scene: matched in the scene's waiting room, or
    (``resumed``: the page was reloaded mid-episode) back in the seat it held."""
    cfg, socket, outbox, renderer, selector = ctx.cfg, ctx.socket, ctx.outbox, ctx.renderer, ctx.selector
    mp = game["multiplayer"]
    events = RoomEvents(socket, ui)
    if resumed is None:
        episode_id = new_id()
        ui.set_stage("waiting")
        ui.message("Waiting for partner…")
        join = {"episode_id": episode_id, "scene": episode_info["scene_id"]}
        net = url_network() if mp["network_from_url"] else None
        if net is not None:
            join["net"] = net
        if mp.get("match_rtt_ms"):  # latency-aware matching: the server groups by this
            shape = shaped_ping_ms() if mp["network_from_url"] else 0.0
            rtt = await median_ping_ms(socket, MATCH_PINGS, shape)
            if rtt is not None:
                join["rtt_ms"] = rtt
                ui.attr("join-rtt", rtt)
        ack = await socket.call("mp_join", join)
        if not ack.get("ok"):
            raise RuntimeError("could not join a room: " + str(ack.get("error")))
        room = await events.wait_for_room()
        if room is None:
            return {"outcome": "wait_timeout", "message": events.timed_out["message"],
                    "redirect": events.timed_out.get("redirect"),
                    "completion_code": events.timed_out.get("completion_code")}
    else:
        room = resumed
        episode_id = resumed["episode_id"]
        events.room = room
    ui.attr("room", room["room"])
    ui.attr("player", room["player"])
    keep_seat(cfg["experiment"], episode_info["scene_id"], room, episode_info["episode_index"])
    if resumed is None:
        start = {"episode_id": episode_id, "seed": room["seed"], "client": {
            "worker": cfg["worker"], "fps": game["fps"], "room": room["room"], "player": room["player"]}}
        start.update(episode_info)
        outbox.put("episode_start", start)
    hosted = [seat for seat, host in (room.get("ai") or {}).items() if host == room["player"]]
    reset = await channel.request(m.RESET, {"seed": room["seed"], "slot": episode_info["scene_id"],
                                            "hosting": hosted})
    take_decisions(events, reset)
    session = RollbackSession(room["players"], room["player"], input_delay=mp["input_delay"],
                              max_prediction=mp["max_prediction"], default_input=game["default_action"],
                              last_frame=game["max_steps"] - 1, hash_every=mp["hash_every"], hosted=hosted)
    await channel.request(m.BATCH, {"ops": session.start_ops()})
    events.session = session
    uploader = Uploader(outbox, episode_id, cfg["upload_every"])
    if resumed is not None:
        await catch_up(resumed, session, channel, renderer, socket, events, uploader, ui)
    meter = RttMeter(socket, episode_info["scene_id"], session, episode_id, ui=ui)
    rtt_task = asyncio.create_task(meter.run())
    clock = WorkerClock(1000 / game["fps"])
    ui.attr("clock", await clock.start())
    watch_visibility(events, session, outbox, ui, episode_id)
    watcher = (lambda: lost_connection(events, ui),
               lambda: asyncio.create_task(rejoin(socket, session, events, ui)))
    socket.watchers.append(watcher)
    ui.set_stage("playing")
    ui.playing()
    try:
        outcome, total = await run_ticks(game, mp, channel, renderer, selector, socket, ui, session, events,
                                         uploader, meter, clock)
    finally:
        meter.running = False
        clock.stop()
        socket.watchers.remove(watcher)
    if outcome == "focus_lost":
        await socket.call("mp_leave", {"reason": "focus_lost"})
    final = None
    if outcome == "completed":
        end = session.end_frame + 1
        reply = await channel.request(m.BATCH, {"ops": [{"op": m.OP_HASH, "frame": end}]})
        final = reply["results"][0]["hash"]
        ui.attr("state-hash", final)
        await socket.call("state_hash", {"frame": end, "hash": final, "final": True})
    forget_seat(cfg["experiment"], episode_info["scene_id"])
    status = outcome if outcome in ("completed", "excluded") else "abandoned"
    saved = await uploader.finish(status, session.emitted_upto, total)
    waited = 0
    while outcome == "completed" and events.result is None and waited < 5000:
        await sleep_ms(50)
        waited += 50
    await rtt_task
    if outcome == "excluded":  # in-play screening: the server has handed the seat to the dropout policy
        return excluded_result(meter.excluded, saved)
    return {"outcome": outcome, "state_hash": final, "saved": saved, "stats": session.stats,
            "total_reward": total,
            "result": events.result, "partner_left": events.partner_left}


async def catch_up(resumed, session, channel, renderer, socket, events, uploader, ui):
    """A reloaded page rebuilds the game from the seed and the room's record: its own
    inputs and the others', replayed in BATCHes of CATCH_UP_FRAMES (progress shown), then
    the frames it was away for get its latest input, and play goes on."""
    for seat, pairs in (resumed.get("own") or {}).items():
        session.load_recorded(seat, pairs)
    for player, pairs in (resumed.get("inputs") or {}).items():
        events.on_input({"player": player, "frame": None, "inputs": pairs})
    started = now_ms()
    target = session.confirmed_upto
    while True:
        ops = session.catch_up(CATCH_UP_FRAMES)
        if not ops:
            break
        reply = await channel.request(m.BATCH, {"ops": ops})
        hashes, last = session.apply_results(ops, reply["results"])
        if last is not None and "render" in last:
            renderer.draw(last["render"])
        for frame, digest in hashes:
            socket.send("state_hash", {"frame": frame, "hash": digest})
        for frame, inputs, result in session.take_confirmed():  # stored again: idempotent
            uploader.add({"frame": frame, "actions": inputs, "rewards": result["rewards"],
                          "done": result["done"], "info": result["info"], "metrics": {"resumed": True}})
        ui.message("Rejoining your game… " + str(session.frame) + "/" + str(target), True)
        await sleep_ms(0)
    recent = {}
    for seat, fresh in session.resume_mine().items():
        send_ai_inputs(socket, session, seat, fresh, recent)
    ui.attr("resumed-at", session.frame)
    ui.attr("resume-ms", round(now_ms() - started, 1))
    log("resumed at frame", session.frame, "in", round(now_ms() - started), "ms")


def take_decisions(events, reply):
    for seat, decision in (reply.get("partners") or {}).items():
        if decision["action"] is not None:  # None: its first decision is still being made
            events.ai_actions[seat] = decision["action"]


async def host_handed_over(events, session, channel, socket, sent_ai):
    """AI seats this browser took over: the worker decides for them from now on, and the
    frames since their last input get one (sent like any of ours)."""
    seats = []
    while events.to_host:
        msg = events.to_host.pop(0)
        fresh = session.host(msg["seat"], msg["from_frame"])
        seats.append(msg["seat"])
        send_ai_inputs(socket, session, msg["seat"], fresh, sent_ai)
    if seats:
        reply = await channel.request(m.BATCH, {"ops": [{"op": m.OP_HOST, "seats": session.hosted}]})
        take_decisions(events, reply)
        log("hosting AI seats:", seats)


def send_ai_inputs(socket, session, seat, sent, recent_by_seat):
    """An AI seat's inputs go out like ours, with the seat they are for (and the last few again);
    the page's own seat's too, after a reload."""
    if not sent:
        return
    recent = (recent_by_seat.get(seat, []) + [[f, v] for f, v in sent])[-max(REDUNDANT_INPUTS, len(sent)):]
    recent_by_seat[seat] = recent
    for start in range(0, len(recent), 32):
        message = {"frame": session.frame, "inputs": recent[start:start + 32]}
        if seat != session.local:
            message["seat"] = seat
        socket.send("input", message)


def watch_visibility(events, session, outbox, ui, episode_id):
    """Record when the tab is hidden/shown; the loop ends the room if it stays hidden
    longer than the focus-loss timeout."""
    def changed(*args):
        hidden = bool(js.document.hidden)
        events.hidden_since = now_ms() if hidden else None
        ui.attr("hidden", "1" if hidden else "0")
        report = {"kind": "focus", "episode_id": episode_id,
                  "detail": {"hidden": hidden, "frame": session.frame}}
        outbox.put("client_event", report)
    js.document.addEventListener("visibilitychange", changed)


def reward_of(result, player):
    rewards = result["rewards"]
    return float(rewards.get(player, 0)) if isinstance(rewards, dict) else float(rewards)


async def run_ticks(game, mp, channel, renderer, selector, socket, ui, session, events, uploader,
                    meter, clock):
    frame_ms = 1000 / game["fps"]
    focus_limit_ms = mp["focus_loss_timeout"] * 1000
    recent = []
    stalled_since = None
    last_fetch = 0
    last_depth = 0
    batch_ms = 0.0
    total = 0.0
    recent_ai = {}
    while True:
        if events.to_host:
            await host_handed_over(events, session, channel, socket, recent_ai)
        if events.partner_left is not None:
            return "partner_left", total
        if meter.excluded is not None:
            return "excluded", total
        if events.hidden_since is not None and now_ms() - events.hidden_since > focus_limit_ms:
            return "focus_lost", total
        if session.finished():
            return "completed", total
        advance = session.can_advance()
        if advance and session.should_wait(meter.rtt_ms / frame_ms):
            advance = False  # we are ahead of our partner: hold a frame so neither side drifts
        if advance:
            stalled_since = None
            sent = session.local_input(selector.action())
            if sent:
                recent = (recent + [[f, v] for f, v in sent])[-REDUNDANT_INPUTS:]
            if sent and events.seated:  # cut off: mp_rejoin hands these over on return
                socket.send("input", {"frame": session.frame, "inputs": recent,
                                      "adv": session.frame_advantage(meter.rtt_ms / frame_ms)})
            for seat in session.hosted:  # the AI seats hosted here: their latest decisions
                ai_sent = session.local_input(events.ai_actions.get(seat, game["default_action"]), seat)
                if events.seated:
                    send_ai_inputs(socket, session, seat, ai_sent, recent_ai)
        elif not session.can_advance():
            session.stats["stalls"] += 1
            now = now_ms()
            stalled_since = stalled_since or now
            if now - stalled_since > mp["stall_fetch_ms"] and now - last_fetch > mp["stall_fetch_ms"]:
                last_fetch = now
                asyncio.create_task(fetch_missing(socket, session, events))
        ops, depth = session.plan(advance)
        if depth:
            last_depth = depth
        if ops:
            reply = await channel.request(m.BATCH, {"ops": ops})
            take_decisions(events, reply)
            batch_ms = reply["t_received"] - reply["t_sent"]
            hashes, last = session.apply_results(ops, reply["results"])
            if last is not None and "render" in last:
                renderer.draw(last["render"])
            for frame, digest in hashes:
                if events.seated:
                    socket.send("state_hash", {"frame": frame, "hash": digest})
        metrics = {"rollbacks": session.stats["rollbacks"], "rollback_depth": last_depth,
                   "rollback_frames": session.stats["rollback_frames"],
                   "prediction_misses": session.stats["prediction_misses"], "batch_ms": batch_ms,
                   "rtt_ms": meter.rtt_ms, "stalls": session.stats["stalls"], "waits": session.stats["waits"]}
        for frame, inputs, result in session.take_confirmed():
            total += reward_of(result, session.local)
            uploader.add({"frame": frame, "actions": inputs, "rewards": result["rewards"],
                          "done": result["done"], "info": result["info"], "metrics": metrics})
        ui.frame(session.frame)
        ui.attr("rollbacks", session.stats["rollbacks"])
        await clock.tick()


def lost_connection(events, ui):
    events.seated = False
    ui.attr("seat", "reconnecting")


async def rejoin(socket, session, events, ui):
    """The connection is back (a new socket): take the seat back with the room's token,
    hand over the inputs made while cut off, and feed in the ones missed; the next tick's
    plan() rolls back and replays to the present in one BATCH."""
    mine = session.confirmed[session.local]
    inputs = [[f, mine[f]] for f in sorted(mine)][-128:]
    ack = await socket.call("mp_rejoin", {"token": events.room["token"], "inputs": inputs,
                                          "from_frame": session.missing_from()})
    if not ack.get("ok"):
        log("could not take the seat back:", ack.get("error"))
        ui.attr("seat", "lost")
        events.partner_left = {"player": session.local, "reason": "reconnect_failed",
                               "message": "Your connection was lost for too long, so the game has ended."}
        return
    for player in ack["inputs"]:
        events.on_input({"player": player, "frame": None, "inputs": ack["inputs"][player]})
    for seat in session.hosted:  # the AI seats' inputs made while cut off (resends are harmless)
        known = session.confirmed[seat]
        send_ai_inputs(socket, session, seat, [(f, known[f]) for f in sorted(known)][-128:], {})
    events.seated = True
    events.rejoins += 1
    ui.attr("seat", "back")
    ui.attr("rejoins", events.rejoins)


async def fetch_missing(socket, session, events):
    ack = await socket.call("fetch_inputs", {"from_frame": session.missing_from()}, timeout_ms=3000)
    if not ack.get("ok"):
        return
    for player in ack["inputs"]:
        events.on_input({"player": player, "frame": None, "inputs": ack["inputs"][player]})
