"""A game scene as a simulated participant plays it: the scene's env laid out and loaded
in the pilot's worker exactly as pages/games.py asks the browser's, then its episodes,
alone or in a room, within the scene's time limit."""

from __future__ import annotations

import time
from typing import Any

from pilot.channel import LocalChannel
from protocol import messages as m
from protocol.scenes import seat_policies


async def prepare(channel: LocalChannel, game: dict[str, Any], root: str) -> None:
    # packages: the pilot runs where the server runs, so the env imports what CPython has
    await channel.request(
        m.SET_GLOBALS,
        {"slot": game["scene_id"], "globals": {"env_config": game["env_config"], "players": game["players"]}},
    )
    await channel.request(
        m.RUN_INIT_CODE,
        {
            "slot": game["scene_id"],
            "code": game["env_source"],
            "filename": game["env_filename"],
            "files": game["env_files"],
            "root": root,
            "partners": seat_policies(game),
            "room": game["multiplayer"] is not None,
        },
    )


async def play_scene(bot: Any, channel: LocalChannel, scene: dict[str, Any], game: dict[str, Any]) -> str:
    """The scene's outcome, as the page reports it in scene_done (or wait_timeout)."""
    await prepare(channel, game, bot.opts.experiment)
    deadline = time.monotonic() + game["time_limit"] / bot.opts.speed if game["time_limit"] else None
    for episode in range(game["episodes"]):
        if game["multiplayer"]:
            from pilot.room import play_room_episode

            result = await play_room_episode(bot, channel, game, scene["id"], episode)
        else:
            result = await bot.play_episode(channel, game, scene["id"], episode, deadline)
        if result["outcome"] != "completed":
            return result["outcome"]
        if result.get("time_up") or (deadline is not None and time.monotonic() >= deadline):
            return "completed"
    return "completed"
