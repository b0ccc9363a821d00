"""AI seats in rooms, in Chromium: the AI is hosted by one browser of the room, its actions
sent as that browser's inputs for the seat, so every browser and the server's replay play
the same frames. Two people + an ONNX partner end `completed` with the replay's hash; when
the host leaves for good, the other browser takes the AI seat over; a person who drops out
is replaced by the stand-in policy (the scripted cook), hosted by the browser that stays."""

from __future__ import annotations

import json
import shutil

from tests.e2e.browser import body, wait_stage, wait_until
from tests.e2e.test_multiplayer import KEYS, finish, kitchen, mash_keys, open_pair
from tests.policy_models import mlp_model
from tests.servers import ROOT

GRID_ENV = '''
MOVES = {"noop": (0, 0), "up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
COLORS = ["#3d8bff", "#ff5a5a", "#5fd35f"]


class Grid:
    """Everyone walks a 10x10 grid; standing on the middle cell scores."""

    def __init__(self, config):
        self.players = list(players)  # the scene's seats (a global the platform sets)
        self.reset()

    def reset(self, seed=None):
        self.pos = {p: [2 + 3 * i, 5] for i, p in enumerate(self.players)}
        self.t = 0
        self.score = 0
        return self._obs(), {}

    def step(self, actions):
        self.t += 1
        for p in self.players:
            dx, dy = MOVES.get(actions.get(p), (0, 0))
            x, y = self.pos[p]
            self.pos[p] = [min(9, max(0, x + dx)), min(9, max(0, y + dy))]
        self.score += sum(1 for p in self.players if self.pos[p] == [5, 5])
        return self._obs(), 0, False, False, {"score": self.score}

    def _obs(self):
        return {p: [self.pos[p][0], self.pos[p][1], self.t % 10] for p in self.players}

    def render(self):
        out = [{"type": "rect", "x": 0, "y": 0, "w": 400, "h": 400, "color": "#202020"}]
        for i, p in enumerate(self.players):
            x, y = self.pos[p]
            out.append({"type": "rect", "x": x * 40, "y": y * 40, "w": 40, "h": 40, "color": COLORS[i % 3]})
        return out


def create_env(config):
    return Grid(config)


def encode(obs, info, seat):
    x, y, t = obs[seat]
    return [x / 9, y / 9, t / 9]
'''
ACTIONS = ["noop", "up", "down", "left", "right"]
CONTROLS = {"ArrowUp": "up", "ArrowDown": "down", "ArrowLeft": "left", "ArrowRight": "right", " ": "noop"}


def ai_room(tmp_path, **multiplayer):
    folder = tmp_path / "experiments" / "airoom"
    folder.mkdir(parents=True)
    (folder / "env.py").write_text(GRID_ENV)
    mlp_model(folder / "mlp.onnx", n_in=3, n_out=len(ACTIONS), hidden=16, seed=4)
    definition = {"env": "env.py", "players": ["p0", "p1", "p2"], "max_steps": 240, "default_action": "noop",
                  "controls": CONTROLS, "start_key": "Enter",
                  "policies": {"mlp": {"onnx": "mlp.onnx", "obs": "env.py:encode", "actions": ACTIONS}},
                  "partners": {"p2": "mlp"},
                  "multiplayer": {"network_from_url": True, "hash_every": 30, **multiplayer}}
    (folder / "experiment.py").write_text(f"EXPERIMENT = {definition!r}\n")
    return folder.parent


def completed_actions(server, frames):
    """The actions of every frame the browser that stayed recorded (its episode completed)."""
    def rows():
        found = server.query("SELECT s.actions FROM steps s JOIN episodes e ON e.id = s.episode_id "
                             "WHERE e.status = 'completed' ORDER BY s.frame")
        return len(found) == frames and found
    found = wait_until(rows, 15) or []
    return [json.loads(a) for (a,) in found]


def test_two_people_and_an_onnx_partner_hosted_by_one_of_them_end_with_the_replayed_state(
        tmp_path, servers, new_page):
    server = servers(experiments_dir=ai_room(tmp_path))
    pages = open_pair(server, new_page, experiment="airoom")
    mash_keys(pages)
    info, rooms = finish(pages, server)
    a, b = info
    assert {a["player"], b["player"]} == {"p0", "p1"} and a["room"] == b["room"]
    assert a["state-hash"] == b["state-hash"] == a["replay-hash"], info
    assert a["room-status"] == b["room-status"] == "completed"
    status, end_frame, finals, replay_hash = rooms[0]
    assert status == "completed" and end_frame == 239 and set(json.loads(finals).values()) == {replay_hash}
    # the AI's inputs are in every browser's record, the same in both, and it moved
    for _, watch in pages:
        assert watch.foreign_requests(server.url) == []
    steps = server.query("SELECT e.participant_id, s.frame, s.actions FROM steps s JOIN episodes e "
                         "ON e.id = s.episode_id ORDER BY s.frame")
    per_page: dict[str, list] = {}
    for pid, _, actions in steps:
        per_page.setdefault(pid, []).append(json.loads(actions)["p2"])
    first, second = per_page.values()
    assert first == second and len(first) == 240 and len(set(first)) > 1


def test_when_the_ai_s_host_leaves_for_good_the_other_browser_takes_the_seat_over(
        tmp_path, servers, new_page):
    server = servers(experiments_dir=ai_room(tmp_path, reconnect_timeout=2, dropout="stand_in"))
    pages = open_pair(server, new_page, experiment="airoom")
    mash_keys(pages, rounds=6)
    host = next(p for p in pages if body(p[0], "player") == "p0")
    stayer, watch = next(p for p in pages if p is not host)
    host[0].close()  # the AI's host closes the tab: no reconnect comes
    stayer.wait_for_selector("body[data-partner=stand_in]", state="attached", timeout=15000)
    for k in range(8):
        stayer.keyboard.press(KEYS[k % len(KEYS)])
        stayer.wait_for_timeout(90)
    assert wait_stage(stayer, "done", "error", timeout=120) == "done", watch.dump()
    stayer.wait_for_selector("body[data-room-status]", state="attached", timeout=15000)
    assert body(stayer, "outcome") == "completed" and body(stayer, "room-status") == "completed"
    assert body(stayer, "state-hash") == body(stayer, "replay-hash")
    assert "hosting AI seats: ['p2']" in " ".join(watch.console) or "hosting AI seats: p2" in \
        " ".join(watch.console), watch.console[-20:]
    ai_moves = [a["p2"] for a in completed_actions(server, 240)]
    assert len(ai_moves) == 240 and len(set(ai_moves[150:])) > 1  # the AI went on playing


def test_a_person_who_drops_out_is_replaced_by_the_stand_in_policy_and_the_room_agrees(
        tmp_path, servers, new_page):
    mp = {"network_from_url": True, "hash_every": 30, "reconnect_timeout": 2, "dropout": "stand_in",
          "stand_in": "cook"}
    exps = kitchen(tmp_path, max_steps=300, multiplayer=mp,
                   policies={"cook": {"python": "cook.py"}})
    shutil.copy(ROOT / "experiments" / "kitchen_ai" / "cook.py", exps / "kitchen" / "cook.py")
    server = servers(experiments_dir=exps)
    pages = open_pair(server, new_page)
    mash_keys(pages, rounds=4)
    leaver = next(p for p in pages if body(p[0], "player") == "p1")
    stayer, watch = next(p for p in pages if p is not leaver)
    leaver[0].close()
    stayer.wait_for_selector("body[data-partner=stand_in]", state="attached", timeout=15000)
    assert wait_stage(stayer, "done", "error", timeout=120) == "done", watch.dump()
    stayer.wait_for_selector("body[data-room-status]", state="attached", timeout=15000)
    assert body(stayer, "room-status") == "completed"
    assert body(stayer, "state-hash") == body(stayer, "replay-hash")
    (payload,) = server.query("SELECT payload FROM events WHERE kind='stand_in'")[0]
    taken = json.loads(payload)["from_frame"]
    moves = [a["p1"] for a in completed_actions(server, 300)]
    assert len(moves) == 300 and len(set(moves[taken + 10:])) > 2  # the cook walked and worked


def test_the_ai_s_host_cut_off_for_two_seconds_hands_its_ai_inputs_over_and_the_room_agrees(
        tmp_path, servers, new_page):
    from tests.e2e.test_reconnect import Cable

    server = servers(experiments_dir=ai_room(tmp_path, reconnect_timeout=20))
    cables = [Cable(), Cable()]
    pages = open_pair(server, new_page, experiment="airoom", sockets=[c.route for c in cables])
    mash_keys(pages, rounds=4)
    host = next(i for i, (page, _) in enumerate(pages) if body(page, "player") == "p0")
    cables[host].unplug()  # the AI's host loses its network; its AI keeps deciding meanwhile
    pages[host][0].wait_for_timeout(2000)
    cables[host].plug()
    pages[host][0].wait_for_selector("body[data-seat=back]", state="attached", timeout=15000)
    mash_keys(pages, rounds=4)
    info, rooms = finish(pages, server)
    a, b = info
    assert a["state-hash"] == b["state-hash"] == a["replay-hash"], info
    assert a["room-status"] == b["room-status"] == "completed" and rooms[0][0] == "completed"
