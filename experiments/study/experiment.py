"""A whole study with two game blocks: consent, a single-player practice maze (two
episodes; a multi-file env with its own module and map files), then the two-player kitchen
with one partner (two episodes, the same partner both times), a questionnaire, the end."""

KITCHEN_CONTROLS = {
    "ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right", " ": "interact",
    "w": "up", "s": "down", "a": "left", "d": "right", "e": "interact",
}

EXPERIMENT = {
    "name": "study",
    "title": "Practice, then cook together",
    "canvas": (480, 480),
    "default_action": "noop",
    "start_key": "Enter",
    "scenes": [
        {"type": "consent", "id": "consent",
         "html": "<p>This study has a short practice maze, then two rounds of a cooking game with a "
                 "partner, then a few questions. It takes about 5 minutes.</p>"},
        {"type": "game", "id": "practice", "env": "maze/env.py", "env_config": {"map": "small.txt"},
         "episodes": 2, "max_steps": 600, "fps": 15, "time_limit": 120,
         "controls": {"ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right"},
         "instructions": "Practice: walk the red dot to the green square with the arrow keys. Press Enter.",
         "between_episodes": "Practice round {episode} of {episodes} done (score {score}). Press {key}."},
        {"type": "game", "id": "duo", "env": "../kitchen/env.py", "players": ["p0", "p1"],
         "env_config": {"episode_frames": 1800, "cook_frames": 60, "delivery_reward": 20},
         "episodes": 2, "max_steps": 1800, "fps": 30, "controls": KITCHEN_CONTROLS,
         "instructions": "Now cook with a partner: 3 onions in the pot, wait, take a dish, scoop the "
                         "soup, deliver it. Arrow keys move, Space uses the tile you face. Press Enter.",
         "between_episodes": "Round {episode} of {episodes} done: {score} points. Press {key} for the "
                             "next round with the same partner."},
        {"type": "survey", "id": "survey", "title": "About the games",
         "questions": [
             {"id": "fun", "kind": "likert", "prompt": "How much did you enjoy cooking together?"},
             {"id": "partner", "kind": "choice", "prompt": "Your partner was…",
              "options": ["helpful", "in the way", "hard to tell"]},
             {"id": "comments", "kind": "text", "prompt": "Anything else?", "required": False},
         ]},
        {"type": "end", "id": "end", "completion_code": "STUDY-DONE", "redirect_after": None},
    ],
}
