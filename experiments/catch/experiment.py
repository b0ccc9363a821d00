"""Single-player example: catch falling fruit with the arrow keys."""

EXPERIMENT = {
    "name": "catch",
    "title": "Catch the fruit",
    "instructions": "Move the basket with ← → (or A / D). Press Space to start.",
    "env": "env.py",
    "env_config": {"lives": 3, "basket_speed": 12, "fall_speed": 5},
    "fps": 30,
    "max_steps": 1800,  # one minute at 30 fps
    "controls": {"ArrowLeft": "left", "ArrowRight": "right", "a": "left", "d": "right"},
    "default_action": "noop",
    "start_key": " ",
}
