"""One single-player episode at a fixed frame rate: read the keyboard, STEP the env in
the worker, draw, record. Uploads run beside the loop so the network never delays a
frame."""

import asyncio
import json

import js

from pages.jsbridge import new_id, now_ms, sleep_ms
from pages.recorder import StepRecorder
from protocol import messages as m

UNSENT_PREFIX = "coplay:unsent:"
RESEND_CHUNK = 1000


class Uploader:
    """Sends step records in acknowledged batches. Until the server acknowledges them they
    are also kept in localStorage, so a closed tab or a server outage loses nothing: the
    next page load sends them (resend_leftovers)."""

    def __init__(self, socket, recorder, ui):
        self.socket = socket
        self.recorder = recorder
        self.ui = ui
        self.tasks = []
        self.key = UNSENT_PREFIX + recorder.episode_id

    def add(self, record):
        if self.recorder.add(record):
            self.kick()
        self.persist()

    def persist(self):
        pending = self.recorder.pending_records()
        storage = js.window.localStorage
        if pending:
            storage.setItem(self.key, json.dumps(pending))
        else:
            storage.removeItem(self.key)

    def kick(self):
        number, records = self.recorder.take_batch()
        if records:
            self.tasks.append(asyncio.create_task(self._send(number, records)))

    async def _send(self, number, records):
        ack = await self.socket.call("steps", {"episode_id": self.recorder.episode_id,
                                               "records": records})
        if ack.get("ok"):
            self.recorder.acknowledge(number)
        else:
            self.recorder.failed(number)
        self.persist()
        self.ui.attr("saved", self.recorder.acked)

    async def drain(self, attempts=20):
        """Upload everything left; retry while the server is unreachable (what still
        fails stays in localStorage for the next page load)."""
        for _ in range(attempts):
            if not self.socket.connected:
                await sleep_ms(500)
                continue
            self.kick()
            while self.tasks:
                await self.tasks.pop()
            if self.recorder.pending() == 0:
                return True
            await sleep_ms(500)
        return False


async def resend_leftovers(socket, ui):
    """Send step records an earlier page load could not deliver; forget them once the
    server has acknowledged them (it ignores frames it already has)."""
    storage = js.window.localStorage
    keys = [str(storage.key(i)) for i in range(int(storage.length))]
    resent = 0
    for key in keys:
        if not key.startswith(UNSENT_PREFIX):
            continue
        records = json.loads(str(storage.getItem(key)))
        episode_id = key[len(UNSENT_PREFIX):]
        ok = True
        for start in range(0, len(records), RESEND_CHUNK):
            ack = await socket.call("steps", {"episode_id": episode_id,
                                              "records": records[start:start + RESEND_CHUNK]})
            ok = ok and bool(ack.get("ok"))
        if ok:
            storage.removeItem(key)
            resent += len(records)
    ui.attr("resent", resent)
    return resent


def episode_seed(cfg):
    if cfg["seed"] is not None:
        return cfg["seed"]
    return int(js.Math.floor(js.Math.random() * 2147483647))


async def play_episode(cfg, channel, renderer, selector, socket, ui):
    seed = episode_seed(cfg)
    episode_id = new_id()
    await socket.call("episode_start", {"episode_id": episode_id, "seed": seed,
                                        "client": {"worker": cfg["worker"], "fps": cfg["fps"]}})
    recorder = StepRecorder(episode_id, cfg["upload_every"])
    uploader = Uploader(socket, recorder, ui)
    reset = await channel.request(m.RESET, {"seed": seed})
    renderer.draw(reset["render"])
    ui.set_stage("playing")
    ui.playing()
    state = {"frame": 0, "total_reward": 0.0}
    try:
        await run_frames(cfg, channel, renderer, selector, uploader, ui, state)
    except Exception:
        # The env or worker failed: keep every step already taken, then report.
        await uploader.drain(attempts=3)
        await socket.call("episode_end", {"episode_id": episode_id, "status": "error",
                                          "frames": state["frame"],
                                          "total_reward": state["total_reward"]})
        raise
    frame = state["frame"]
    total_reward = state["total_reward"]
    saved = await uploader.drain()
    await socket.call("episode_end", {"episode_id": episode_id, "status": "completed",
                                      "frames": frame, "total_reward": total_reward})
    return {"episode_id": episode_id, "frames": frame, "total_reward": total_reward, "saved": saved}


async def run_frames(cfg, channel, renderer, selector, uploader, ui, state):
    players = cfg["players"]
    frame_ms = 1000 / cfg["fps"]
    deadline = now_ms()
    while True:
        actions = {}
        for player in players:
            actions[player] = cfg["default_action"]
        actions[players[0]] = selector.action()
        t_client = now_ms()
        result = await channel.request(m.STEP, {"actions": actions})
        renderer.draw(result["render"])
        state["frame"] = result["frame"]
        ui.frame(result["frame"])
        state["total_reward"] += reward_sum(result["rewards"])
        uploader.add({
            "frame": result["frame"], "actions": actions, "rewards": result["rewards"],
            "done": result["done"], "info": result["info"], "t_client": t_client,
            "t_sent": result["t_sent"], "t_worker_start": result["t_worker_start"],
            "t_worker_end": result["t_worker_end"], "t_received": result["t_received"],
        })
        if result["done"] or result["frame"] >= cfg["max_steps"]:
            return
        deadline += frame_ms
        wait = deadline - now_ms()
        if wait > 1:
            await sleep_ms(wait)
        else:
            deadline = now_ms()  # running late: drop the debt instead of sprinting


def reward_sum(rewards):
    if isinstance(rewards, dict):
        return sum(float(v) for v in rewards.values())
    return float(rewards)
