"""A multiplayer episode as a simulated participant plays it: matched in the scene's waiting
room, then the page's own rollback netcode (pages/netcode.py RollbackSession, pure Python)
driving the pilot's worker with BATCHes, inputs sent and received over Socket.IO like the
page's (pages/multiplayer.py run_ticks), state hashes reported, the room's end awaited."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from pages.netcode import InputConflict, RollbackSession
from pages.outbox import Uploader
from pilot.actions import action_source
from pilot.channel import LocalChannel
from protocol import messages as m

REDUNDANT_INPUTS = 8  # as pages/multiplayer.py: the last few inputs again with each message
RESULT_WAIT_S = 15.0
# a room's messages per second per seat stay well under the server's rate limit (120 events/s
# per connection, with the state hashes and pings): --speed is capped to keep inputs at most this
MAX_INPUTS_PER_S = 80.0
GONE_S = 10.0  # a seat whose socket is down this long gives up the episode


class RoomEvents:
    def __init__(self, bot: Any):
        self.room: dict[str, Any] | None = None
        self.timed_out: dict[str, Any] | None = None
        self.partner_left: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.session: RollbackSession | None = None
        self.ai_actions: dict[str, Any] = {}
        self.conflicts = 0
        self.woken = asyncio.Event()
        self.hooks = bot.opts.hooks
        self.bot = bot
        for event in ("room_start", "wait_timeout", "partner_left", "room_result", "server_error"):
            bot.sio.on(event, getattr(self, "on_" + event))
        bot.sio.on("input", self.on_relayed)

    async def on_room_start(self, msg: dict) -> None:
        self.room = msg
        self.woken.set()

    async def on_wait_timeout(self, msg: dict) -> None:
        self.timed_out = msg
        self.woken.set()

    async def on_relayed(self, msg: dict) -> None:
        self.hooks.received(self.bot, msg)
        await self.on_input(msg)

    async def on_server_error(self, msg: dict) -> None:
        self.hooks.server_error(self.bot, msg)

    async def on_input(self, msg: dict) -> None:
        if self.session is None:
            return
        try:
            for frame, value in msg["inputs"]:
                self.session.remote_input(msg["player"], frame, value, msg["frame"], msg.get("adv"))
        except InputConflict:
            self.conflicts += 1

    async def on_partner_left(self, msg: dict) -> None:
        self.partner_left = msg

    async def on_room_result(self, msg: dict) -> None:
        self.result = msg


async def send_inputs(bot: Any, session: RollbackSession, seat: str, sent: list, recent: dict) -> None:
    if not sent:
        return
    mine = (recent.get(seat, []) + [[f, v] for f, v in sent])[-max(REDUNDANT_INPUTS, len(sent)) :]
    recent[seat] = mine
    for start in range(0, len(mine), 32):
        message: dict[str, Any] = {
            "frame": session.frame,
            "inputs": mine[start : start + 32],
            "adv": session.frame_advantage(0),
        }
        if seat != session.local:
            message["seat"] = seat
        bot.opts.hooks.sending(bot, seat, message, sent if start == 0 else [])
        await bot.sio.emit("input", message)


async def play_room_episode(
    bot: Any, channel: LocalChannel, game: dict[str, Any], scene_id: str, episode: int
) -> dict[str, Any]:
    mp = game["multiplayer"]
    events = RoomEvents(bot)
    eid = uuid.uuid4().hex
    join: dict[str, Any] = {"episode_id": eid, "scene": scene_id}
    if bot.opts.net is not None and mp.get("network_from_url"):
        join["net"] = bot.opts.net
    async with bot.opts.hooks.joining(bot, scene_id, episode):
        ack = await bot.call("mp_join", join)
    if not ack.get("ok"):
        raise RuntimeError(f"could not join a room: {ack.get('error')}")
    await asyncio.wait_for(events.woken.wait(), timeout=mp["wait_timeout"] + 30)
    if events.room is None:
        return {"outcome": "wait_timeout"}
    room = events.room
    bot.outbox.put(
        "episode_start",
        {
            "episode_id": eid,
            "seed": room["seed"],
            "scene_id": scene_id,
            "episode_index": episode,
            "client": {"worker": "pilot", "fps": game["fps"], "room": room["room"], "player": room["player"]},
        },
    )
    hosted = [seat for seat, host in (room.get("ai") or {}).items() if host == room["player"]]
    reset = await channel.request(
        m.RESET, {"seed": room["seed"], "slot": scene_id, "hosting": hosted, "render": False}
    )
    take_decisions(events, reset)
    session = RollbackSession(
        room["players"],
        room["player"],
        input_delay=mp["input_delay"],
        max_prediction=mp["max_prediction"],
        default_input=game["default_action"],
        last_frame=game["max_steps"] - 1,
        hash_every=mp["hash_every"],
        hosted=hosted,
    )
    await channel.request(m.BATCH, {"ops": session.start_ops()})
    events.session = session
    act = action_source(game, room["player"], bot.opts.policy, bot.rng, room["seed"], bot.files(channel))
    act.start(reset, game["players"])
    uploader = Uploader(bot.outbox, eid, bot.cfg.get("upload_every", 30))
    await bot.opts.hooks.playing(bot, room)
    record = {
        "episode": eid,
        "scene": scene_id,
        "frames": 0,
        "status": "running",
        "room": room["room"],
        "uploaded": [],
    }
    bot.result.episodes.append(record)
    outcome, total = await run_ticks(bot, channel, game, session, events, act, uploader, record)
    bot.opts.hooks.played(bot, room, outcome)
    final = None
    if outcome == "completed":
        end = session.end_frame + 1
        reply = await channel.request(m.BATCH, {"ops": [{"op": m.OP_HASH, "frame": end}]})
        final = reply["results"][0]["hash"]
        await bot.call("state_hash", {"frame": end, "hash": final, "final": True})
    record["status"] = "completed" if outcome == "completed" else "abandoned"
    await uploader.finish(record["status"], session.emitted_upto, total)
    waited = time.monotonic()
    while outcome == "completed" and events.result is None and time.monotonic() - waited < RESULT_WAIT_S:
        await asyncio.sleep(0.05)
    record["room_status"] = events.result["status"] if events.result else None
    return {"outcome": outcome, "total_reward": total}


def take_decisions(events: RoomEvents, reply: dict[str, Any]) -> None:
    for seat, decision in (reply.get("partners") or {}).items():
        if decision["action"] is not None:
            events.ai_actions[seat] = decision["action"]


async def run_ticks(
    bot: Any,
    channel: LocalChannel,
    game: dict[str, Any],
    session: RollbackSession,
    events: RoomEvents,
    act: Any,
    uploader: Uploader,
    record: dict,
) -> tuple[str, float]:
    frame_s = 1 / min(game["fps"] * bot.opts.speed, MAX_INPUTS_PER_S)
    recent: dict[str, list] = {}
    total = 0.0
    due = time.monotonic()
    stalled_since = None
    down_since = None
    while True:
        if events.partner_left is not None:
            return "partner_left", total
        if not bot.sio.connected:
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > GONE_S:
                raise RuntimeError(
                    f"lost the connection at frame {session.frame} of room {events.room['room']}"
                )
        else:
            down_since = None
        if session.finished():
            return "completed", total
        advance = session.can_advance() and not session.should_wait(0)
        if advance:
            stalled_since = None
            await send_inputs(bot, session, session.local, session.local_input(act.action()), recent)
            for seat in session.hosted:
                sent = session.local_input(events.ai_actions.get(seat, game["default_action"]), seat)
                await send_inputs(bot, session, seat, sent, recent)
        elif not session.can_advance():
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 0.5:  # an input the relay lost: ask the record
                stalled_since = time.monotonic()
                ack = await bot.call("fetch_inputs", {"from_frame": session.missing_from()}, timeout=3)
                for player, pairs in (ack.get("inputs") or {}).items() if ack.get("ok") else ():
                    await events.on_input({"player": player, "frame": None, "inputs": pairs})
        ops, _depth = session.plan(advance)
        if ops:
            if act.needs_obs:
                ops[-1]["include_obs"] = True
            reply = await channel.request(m.BATCH, {"ops": ops})
            take_decisions(events, reply)
            hashes, last = session.apply_results(ops, reply["results"])
            if last is not None and act.needs_obs and "obs" in last:
                act.saw(last, game["players"])
        else:
            hashes = []
        # as the page does, the confirmed frames are taken before anything awaits: a partner's
        # input arriving in between would confirm the last frame past the end apply_results
        # looked for, and the episode would never finish (the page's socket.send does not yield)
        metrics = {"rollbacks": session.stats["rollbacks"], "stalls": session.stats["stalls"]}
        for frame, inputs, result in session.take_confirmed():
            rewards = result["rewards"]
            total += float(rewards.get(session.local, 0)) if isinstance(rewards, dict) else float(rewards)
            uploader.add(
                {
                    "frame": frame,
                    "actions": inputs,
                    "rewards": rewards,
                    "done": result["done"],
                    "info": result["info"],
                    "metrics": metrics,
                }
            )
            record["uploaded"].append(frame)
            record["frames"] = frame
        for frame, digest in hashes:
            await bot.sio.emit("state_hash", {"frame": frame, "hash": digest})
        due += frame_s
        await asyncio.sleep(max(0.0, due - time.monotonic()))
