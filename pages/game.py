"""One single-player episode at a fixed frame rate: read the keyboard, STEP the env in
the worker, draw, record. Uploads run beside the loop so the network never delays a
frame."""

import js

from pages.jsbridge import log, mark, new_id, now_ms, sleep_ms, try_set_item
from pages.outbox import Uploader
from protocol import messages as m


def episode_seed(cfg):
    if cfg["seed"] is not None:
        return cfg["seed"]
    return int(js.Math.floor(js.Math.random() * 2147483647))


CATCH_UP_FRAMES = 300  # recorded steps per BATCH while a reloaded page rebuilds its episode


def _episode_key(cfg, scene_id):
    return "coplay:episode:" + cfg["experiment"] + ":" + scene_id


def kept_episode(cfg, scene_id):
    """The single-player episode this tab was playing in the scene before a reload."""
    import json

    text = js.window.localStorage.getItem(_episode_key(cfg, scene_id))
    if text is None or cfg.get("on_reload", "resume") != "resume":
        return None
    try:
        return json.loads(str(text))
    except ValueError:
        return None


async def reclaim_episode(cfg, socket, outbox, ui, scene_id):
    """After a reload: the server's record of the kept episode (its seed and steps), once
    every step the last page queued has reached it. None when it cannot be resumed."""
    kept = kept_episode(cfg, scene_id)
    if kept is None:
        return None
    ui.set_stage("resuming")
    ui.message("Resuming your game…")
    await outbox.flush(3000)  # the steps the page queued before the reload, stored first
    ack = await socket.call("episode_resume", {"episode_id": kept["episode_id"]})
    js.window.localStorage.removeItem(_episode_key(cfg, scene_id))
    if not ack.get("ok"):
        log("could not resume the episode:", ack.get("error"))
        return None
    ack["episode_id"] = kept["episode_id"]
    ack["episode_index"] = kept["episode_index"]
    return ack


async def replay_recorded(resumed, game, channel, ctx, ui, state):
    """Rebuild the episode in the worker from the recorded actions, in BATCHes."""
    steps = resumed["steps"]
    started = now_ms()
    for start in range(0, len(steps), CATCH_UP_FRAMES):
        chunk = steps[start:start + CATCH_UP_FRAMES]
        ops = [{"op": m.OP_STEP, "actions": actions, "recorded": True} for _, actions, _ in chunk]
        ops[-1]["render"] = True
        reply = await channel.request(m.BATCH, {"ops": ops})
        for (_, _, rewards) in chunk:
            state["total_reward"] += reward_sum(rewards)
        ctx.renderer.draw(reply["results"][-1]["render"])
        state["frame"] = chunk[-1][0]
        ui.message("Resuming your game… " + str(state["frame"]) + "/" + str(len(steps)), True)
    ui.attr("resumed-at", state["frame"])
    ui.attr("resume-ms", round(now_ms() - started, 1))


async def play_episode(game, episode_info, channel, ctx, ui, deadline=None, resumed=None):
    """One single-player episode of a game scene; `deadline` (epoch ms) is the scene's
    time limit: the episode stops there, its steps kept. ``resumed``: the page was reloaded
    in it; the recorded steps are replayed and the same episode plays on."""
    import json

    cfg = ctx.cfg
    if resumed is None:
        seed = episode_seed(cfg)
        episode_id = new_id()
        start = {"episode_id": episode_id, "seed": seed,
                 "client": {"worker": cfg["worker"], "fps": game["fps"]}}
        start.update(episode_info)
        ctx.outbox.put("episode_start", start)
    else:
        seed, episode_id = resumed["seed"], resumed["episode_id"]
    try_set_item(js.window.localStorage, _episode_key(cfg, episode_info["scene_id"]),
                 json.dumps({"episode_id": episode_id, "episode_index": episode_info["episode_index"]}))
    uploader = Uploader(ctx.outbox, episode_id, cfg["upload_every"])
    reset = await channel.request(m.RESET, {"seed": seed, "slot": episode_info["scene_id"]})
    ctx.renderer.draw(reset["render"])
    if episode_info["episode_index"] == 0:
        mark("scene-first-frame:" + episode_info["scene_id"])  # what the participant sees
    state = {"frame": 0, "total_reward": 0.0, "time_up": False}
    if resumed is not None and resumed["steps"]:
        await replay_recorded(resumed, game, channel, ctx, ui, state)
    meter = None
    if (cfg.get("screening") or {}).get("during_play"):  # in-play screening: the server watches
        import asyncio

        from pages.vitals import RttMeter

        meter = RttMeter(ctx.socket, episode_info["scene_id"], episode_id=episode_id, state=state, ui=ui)
        asyncio.create_task(meter.run())
    ui.set_stage("playing")
    ui.playing()
    try:
        await run_frames(game, channel, ctx.renderer, ctx.selector, uploader, ui, state, deadline, meter)
    except Exception as exc:
        # The env, a policy or the worker failed: keep every step already taken, record what
        # failed with the episode, then report it on the page.
        ctx.outbox.put("client_event", {"kind": "worker_error", "episode_id": episode_id,
                                        "detail": {"message": str(exc), "frame": state["frame"]}})
        await uploader.finish("error", state["frame"], state["total_reward"], timeout_ms=3000)
        raise
    finally:
        if meter is not None:
            meter.running = False
    js.window.localStorage.removeItem(_episode_key(cfg, episode_info["scene_id"]))
    frame = state["frame"]
    total_reward = state["total_reward"]
    if meter is not None and meter.excluded is not None:
        from pages.vitals import excluded_result

        saved = await uploader.finish("excluded", frame, total_reward)
        return excluded_result(meter.excluded, saved)
    saved = await uploader.finish("time_limit" if state["time_up"] else "completed", frame, total_reward)
    return {"episode_id": episode_id, "frames": frame, "total_reward": total_reward, "saved": saved}


async def run_frames(game, channel, renderer, selector, uploader, ui, state, time_limit=None, meter=None):
    players = game["players"]
    frame_ms = 1000 / game["fps"]
    deadline = now_ms()
    while True:
        if meter is not None and meter.excluded is not None:
            return  # in-play screening excluded the participant (pages/vitals.py)
        if time_limit is not None and now_ms() >= time_limit:
            state["time_up"] = True
            return
        actions = {}
        for player in players:
            actions[player] = game["default_action"]
        actions[game["humans"][0]] = selector.action()
        t_client = now_ms()
        result = await channel.request(m.STEP, {"actions": actions})
        renderer.draw(result["render"])
        state["frame"] = result["frame"]
        ui.frame(result["frame"])
        state["total_reward"] += reward_sum(result["rewards"])
        record = {
            "frame": result["frame"], "actions": actions, "rewards": result["rewards"],
            "done": result["done"], "info": result["info"], "t_client": t_client,
            "t_sent": result["t_sent"], "t_worker_start": result["t_worker_start"],
            "t_worker_end": result["t_worker_end"], "t_received": result["t_received"],
        }
        if "partner_actions" in result:  # AI seats: recorded like a person's input, with who decided
            actions.update(result["partner_actions"])
            record["metrics"] = {"partners": result["partners"]}
        uploader.add(record)
        if result["done"] or result["frame"] >= game["max_steps"]:
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
