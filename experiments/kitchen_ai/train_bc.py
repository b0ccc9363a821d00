"""Behaviour cloning of the scripted cook (cook.py) into a small MLP, exported as bc_cook.onnx.

    python -m venv /tmp/bcvenv && /tmp/bcvenv/bin/pip install -r experiments/kitchen_ai/requirements-train.txt
    /tmp/bcvenv/bin/python experiments/kitchen_ai/train_bc.py          # from the repository root

1. Demonstrations: the scripted cook plays seat p1 of the kitchen (env_config of experiment.py)
   beside partners in p0 (idle, a second scripted cook, a random one, a "sticky" random one that
   holds each action a few frames). The cook sees the whole obs; its action is the label, but in
   random bursts a random action is executed instead, so the data covers states the cook itself
   would not reach and how it recovers from them. Then DAgger rounds: the clone plays (with the
   same bursts) and the cook labels the states it visits; all data is pooled and refitted.
2. Behaviour cloning: features.encode(obs, info, "p1") (104 floats) -> MLP 104-64-64-6 (ReLU),
   cross-entropy on the cook's action, Adam, fixed seeds, one CPU thread.
3. Export to ONNX (opset 17, input "obs" [batch, 104], output "logits" [batch, 6]), checked with
   onnx.checker and against onnxruntime on the training set.
4. Evaluation with onnxruntime, argmax, seat p1, deliveries per 1800-frame episode beside an
   idle partner, the scripted cook and random partners, next to the scripted cook in the same seat.
"""

import argparse
import random
import runpy
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
ENV = runpy.run_path(str(HERE.parent / "kitchen" / "env.py"))
COOK = runpy.run_path(str(HERE / "cook.py"))
encode = runpy.run_path(str(HERE / "features.py"))["encode"]
ENV_CONFIG = runpy.run_path(str(HERE / "experiment.py"))["BLOCK"]["env_config"]
ACTIONS = ("noop", "up", "down", "left", "right", "interact")  # the model's output order
FRAMES = ENV_CONFIG["episode_frames"]
PARTNERS = ("idle", "cook", "random", "sticky")


def make_cook(seat):
    return COOK["create_policy"]({"seat": seat})


def make_partner(kind, seed):
    """A p0 policy: (obs, info) -> action. The scripted cook sees the whole obs."""
    rng = random.Random(f"partner/{kind}/{seed}")
    if kind == "idle":
        return lambda obs, info: "noop"
    if kind == "cook":
        cook = make_cook("p0")
        return cook.act
    if kind == "random":
        return lambda obs, info: rng.choice(ACTIONS)
    held = ["noop", 0]  # sticky: one random action held for 1-12 frames

    def sticky(obs, info):
        if held[1] <= 0:
            held[:] = [rng.choice(ACTIONS), rng.randint(1, 12)]
        held[1] -= 1
        return held[0]
    return sticky


def executed(cook, pos, action):
    """Tell the cook which action really ran (cook.act assumed its own): what it remembers
    about its last move, so a random action does not look like a blocked move."""
    dx, dy = ENV["DIRS"][ENV["MOVES"][action]] if action in ENV["MOVES"] else (0, 0)
    nxt = (pos[0] + dx, pos[1] + dy)
    cook._last_move_into = nxt if action in ENV["MOVES"] and nxt in COOK["FLOOR"] else None
    if action != "interact":
        cook._pending = None


def rollout(partner, seed, burst, learner=None):
    """One episode with the cook's labels for p1: (features, labels). p1 runs the cook's action
    (or the learner's), except in random bursts (start probability `burst`, 1-8 frames)."""
    env, cook, p0 = ENV["create_env"](dict(ENV_CONFIG)), make_cook("p1"), make_partner(partner, seed)
    rng = random.Random(f"bursts/{partner}/{seed}/{burst}/{learner is None}")
    obs, info = env.reset(seed=seed)
    cook.reset(seed)
    xs, ys, left = [], [], 0
    for _ in range(FRAMES):
        label = cook.act(obs, info)
        features = encode(obs, info, "p1")
        xs.append(features)
        ys.append(ACTIONS.index(label))
        if left == 0 and rng.random() < burst:
            left = rng.randint(1, 8)
        action = learner(features) if learner is not None else label
        if left > 0:
            action, left = rng.choice(ACTIONS), left - 1
        if action != label:
            executed(cook, obs["p1"], action)
        a0 = p0(obs, info)
        obs, _, terminated, _, info = env.step({"p0": a0, "p1": action})
        if terminated:
            break
    return xs, ys


def collect(seeds, learner=None):
    xs, ys = [], []
    for partner in PARTNERS:
        for seed in range(seeds):
            for burst in (0.0, 0.03, 0.1):
                x, y = rollout(partner, seed, burst, learner)
                xs += x
                ys += y
    return xs, ys


def make_model(n_in):
    return nn.Sequential(nn.Linear(n_in, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                         nn.Linear(64, len(ACTIONS)))


def fit(xs, ys, epochs, seed):
    torch.manual_seed(seed)
    x, y = torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.long)
    model = make_model(x.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), 256):
            idx = perm[start:start + 256]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(x)
        accuracy = (logits.argmax(1) == y).float().mean().item()
        loss = nn.functional.cross_entropy(logits, y).item()
    return model, accuracy, loss


def torch_learner(model):
    def act(features):
        with torch.no_grad():
            return ACTIONS[int(model(torch.tensor([features], dtype=torch.float32)).argmax())]
    return act


def export(model, xs, path):
    n_in = len(xs[0])
    warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
    torch.onnx.export(model, (torch.zeros(1, n_in),), str(path), input_names=["obs"], output_names=["logits"],
                      dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = np.asarray(xs, dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"obs": x})[0]
    return session, float(np.abs(got - expected).max()), float((got.argmax(1) == expected.argmax(1)).mean())


def play(p1, partner, seed):
    """Deliveries in one episode: p1 is "bc" (an onnxruntime session), "cook" (the scripted cook
    as the platform runs it: its own [x, y, facing, item] and the whole info) or "cook-whole"."""
    env, p0 = ENV["create_env"](dict(ENV_CONFIG)), make_partner(partner, seed)
    obs, info = env.reset(seed=seed)
    cook = make_cook("p1")
    cook.reset(seed)
    for _ in range(FRAMES):
        if isinstance(p1, onnxruntime.InferenceSession):
            x = np.asarray([encode(obs, info, "p1")], dtype=np.float32)
            action = ACTIONS[int(p1.run(["logits"], {"obs": x})[0].argmax())]
        else:
            action = cook.act(obs["p1"] if p1 == "cook" else obs, info)
        obs, _, terminated, _, info = env.step({"p0": p0(obs, info), "p1": action})
        if terminated:
            break
    return info["deliveries"]


def evaluate(session, episodes):
    print(f"deliveries per {FRAMES}-frame episode, seat p1 (mean over {episodes} episodes, min-max):")
    for partner in ("idle", "cook", "random", "sticky"):
        row = []
        for p1 in (session, "cook", "cook-whole"):
            counts = [play(p1, partner, 1000 + seed) for seed in range(episodes)]
            row.append(f"{np.mean(counts):5.1f} ({min(counts)}-{max(counts)})")
        print(f"  partner {partner:7s} BC {row[0]}   scripted {row[1]}   scripted, whole obs {row[2]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="episodes per partner and burst rate per round")
    parser.add_argument("--dagger", type=int, default=2, help="DAgger rounds after the cook's own")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes per partner")
    parser.add_argument("--out", type=Path, default=HERE / "bc_cook.onnx")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    start = time.perf_counter()
    xs, ys = collect(args.seeds)
    for round_ in range(args.dagger + 1):
        model, accuracy, loss = fit(xs, ys, args.epochs, seed=round_)
        print(f"round {round_}: {len(xs)} samples, train accuracy {accuracy:.4f}, loss {loss:.4f}, "
              f"{time.perf_counter() - start:.0f} s")
        if round_ < args.dagger:
            x, y = collect(args.seeds, torch_learner(model))
            xs, ys = xs + x, ys + y
    session, diff, agree = export(model, xs, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): onnxruntime vs torch on the training set: "
          f"max |logit diff| {diff:.2e}, argmax agreement {agree:.4f}")
    evaluate(session, args.episodes)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
