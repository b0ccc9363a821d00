"""Two-player cooperative example: a tiny Overcooked-style kitchen."""

EXPERIMENT = {
    "name": "kitchen",
    "title": "Kitchen (two players)",
    "instructions": (
        "You and a partner are cooks. Move with the arrow keys (or W A S D); press Space (or E) to "
        "use the tile you face. Put 3 onions in the pot, wait for the soup to cook, take a dish, scoop "
        "the soup and deliver it at the serving window: +20 for both of you. Press Enter to start."
    ),
    "env": "env.py",
    "env_config": {"episode_frames": 1800, "cook_frames": 60, "delivery_reward": 20},
    "players": ["p0", "p1"],
    "fps": 30,
    "max_steps": 1800,  # one minute at 30 fps
    "controls": {
        "ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right", " ": "interact",
        "w": "up", "s": "down", "a": "left", "d": "right", "e": "interact",
    },
    "default_action": "noop",
    "start_key": "Enter",
}
