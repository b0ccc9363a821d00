"""The kitchen with an AI partner, as a within-subject study: one block with the scripted
cook (a Python policy, cook.py), one with the cook's behaviour-cloned copy (an ONNX model,
bc_cook.onnx, trained by train_bc.py with PyTorch and run by onnxruntime-web), in an order
drawn per participant, then a questionnaire comparing them. The condition "baseline" plays
the second block with a random partner instead (between subjects). The AI plays seat p1 in
the participant's own browser, off the main thread; its every action is recorded beside the
participant's, with the frame it was decided from."""

KITCHEN_CONTROLS = {
    "ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right", " ": "interact",
    "w": "up", "s": "down", "a": "left", "d": "right", "e": "interact",
}
ACTIONS = ["noop", "up", "down", "left", "right", "interact"]  # the order of the model's scores
BLOCK = {"type": "game", "env": "../kitchen/env.py", "players": ["p0", "p1"], "max_steps": 1800,
         "env_config": {"episode_frames": 1800, "cook_frames": 60, "delivery_reward": 20},
         "controls": KITCHEN_CONTROLS, "shuffle": "partners"}

EXPERIMENT = {
    "name": "kitchen_ai",
    "title": "Cooking with an AI partner",
    "default_action": "noop",
    "start_key": "Enter",
    "policies": {
        "cook": {"python": "cook.py", "config": {"seat": "p1"}},
        "bc": {"onnx": "bc_cook.onnx", "obs": "features.py:encode", "actions": ACTIONS},
        "coin": {"random": True, "actions": ACTIONS},
    },
    # the training script stays on the server
    "server_only": ["train_bc.py", "requirements-train.txt"],
    "conditions": [{"name": "imitation"},
                   {"name": "baseline", "overrides": {"partner-b": {"partners": {"p1": "coin"}}}}],
    "scenes": [
        {"type": "instructions", "id": "intro", "pages": [
            "<p>You will cook twice, each time with a different computer partner (the red cook). Put "
            "3 onions in the pot, wait, take a dish, scoop the soup, deliver it at the window.</p>"]},
        {**BLOCK, "id": "partner-a", "partners": {"p1": "cook"},
         "instructions": "Partner A. Arrow keys move, Space uses the tile you face. Press Enter."},
        {**BLOCK, "id": "partner-b", "partners": {"p1": "bc"},
         "instructions": "Partner B. Arrow keys move, Space uses the tile you face. Press Enter."},
        {"type": "survey", "id": "compare", "title": "Your partners", "questions": [
            {"id": "better", "kind": "choice", "prompt": "Which partner was the better cook?",
             "options": ["the first", "the second", "no difference"]},
            {"id": "trust", "kind": "likert", "prompt": "I could rely on my partners."},
        ]},
        {"type": "end", "id": "end", "completion_code": "KITCHEN-AI", "redirect_after": None},
    ],
}
