"""One single-player episode at a fixed frame rate: read the keyboard, STEP the env in
the worker, draw, record. Uploads run beside the loop so the network never delays a
frame."""

import js

from pages.jsbridge import new_id, now_ms, sleep_ms
from pages.outbox import Uploader
from protocol import messages as m


def episode_seed(cfg):
    if cfg["seed"] is not None:
        return cfg["seed"]
    return int(js.Math.floor(js.Math.random() * 2147483647))


async def play_episode(cfg, channel, renderer, selector, outbox, ui):
    seed = episode_seed(cfg)
    episode_id = new_id()
    outbox.put("episode_start", {"episode_id": episode_id, "seed": seed,
                                 "client": {"worker": cfg["worker"], "fps": cfg["fps"]}})
    uploader = Uploader(outbox, episode_id, cfg["upload_every"])
    reset = await channel.request(m.RESET, {"seed": seed})
    renderer.draw(reset["render"])
    ui.set_stage("playing")
    ui.playing()
    state = {"frame": 0, "total_reward": 0.0}
    try:
        await run_frames(cfg, channel, renderer, selector, uploader, ui, state)
    except Exception:
        # The env or worker failed: keep every step already taken, then report.
        await uploader.finish("error", state["frame"], state["total_reward"], timeout_ms=3000)
        raise
    frame = state["frame"]
    total_reward = state["total_reward"]
    saved = await uploader.finish("completed", frame, total_reward)
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
