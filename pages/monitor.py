"""The researcher's live monitor (MicroPython, /admin/monitor): draws the picture the
server pushes every second over the /admin namespace (server/monitor/live.py) and sends
the researcher's actions, each with the session's CSRF token. <body data-pushes> counts
the pictures drawn, so tests can follow it."""

import json

import js
from js import document

from pages.socket_client import GameSocket

CONFIG = json.loads(document.getElementById("monitor-config").textContent)


def esc(value):
    text = "" if value is None else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


class Body:
    def attr(self, name, value):
        document.body.setAttribute("data-" + name, str(value))


def button(label, action, **data):
    attrs = "".join(' data-' + k + '="' + esc(v) + '"' for k, v in data.items())
    return '<button data-action="' + action + '"' + attrs + '>' + esc(label) + '</button>'


def seat_cell(seat):
    parts = [esc(seat["player"]) + ": " + esc(seat["participant"]) + " (" + esc(seat["status"]) + ")"]
    if seat.get("rtt_ms") is not None:
        parts.append("RTT " + str(int(seat["rtt_ms"])) + " ms")
    if seat.get("rollbacks_per_min") is not None:
        parts.append(str(seat["rollbacks_per_min"]) + " rollbacks/min")
    if seat.get("hidden"):
        parts.append("tab hidden")
    return '<li data-seat="' + esc(seat["player"]) + '">' + ", ".join(parts) + "</li>"


def rooms_table(name, rooms):
    if not rooms:
        return '<p class="note">No room is playing.</p>'
    rows = []
    for room in rooms:
        ai = ", ".join(seat + " (hosted by " + host + ")" for seat, host in sorted(room["ai"].items()))
        rows.append('<tr data-room="' + esc(room["id"]) + '"><td>' + esc(room["id"]) + "</td><td>"
                    + esc(room["scene"]) + "</td><td>" + str(room["frame"]) + "</td><td>"
                    + str(int(room["age_s"])) + " s</td><td><ul>"
                    + "".join(seat_cell(s) for s in room["seats"]) + "</ul></td><td>" + esc(ai or "—")
                    + "</td><td>" + str(room["desyncs"]) + "</td><td>"
                    + button("End room", "end_room", room=room["id"], experiment=name) + "</td></tr>")
    return ("<table><thead><tr><th>Room</th><th>Scene</th><th>Frame</th><th>Age</th><th>Seats</th>"
            "<th>AI seats</th><th>Desyncs</th><th></th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def waiting_table(name, waiting):
    rows = []
    for queue in waiting:
        for person in queue["participants"]:
            scene = esc(queue["scene"]) + (" (returning partners)" if queue["returning"] else "")
            who = esc(person["participant"])
            rows.append('<tr data-waiting="' + who + '"><td>' + scene + "</td><td>" + who + "</td><td>"
                        + str(int(person["waited_s"])) + " s</td><td>"
                        + button("Send to fallback", "send_to_fallback", sid=person["sid"], experiment=name)
                        + "</td></tr>")
    if not rows:
        return '<p class="note">Nobody is waiting.</p>'
    return ("<table><thead><tr><th>Scene</th><th>Participant</th><th>Waiting</th><th></th></tr></thead>"
            "<tbody>" + "".join(rows) + "</tbody></table>")


def outcomes_list(counts):
    if not counts:
        return '<p class="note">No outcomes yet.</p>'
    started = counts["participants"]
    rate = str(round(100 * counts["finished"] / started)) + " %" if started else "—"
    median = counts.get("median_finish_s")
    items = [("participants", started), ("completed", counts["finished"]), ("completion rate", rate),
             ("declined", counts["declined"]), ("screened out", counts["screened_out"]),
             ("wait timeout", counts["wait_timeout"]), ("dropout (rooms)", counts["rooms_abandoned"]),
             ("rooms completed", str(counts["rooms_completed"]) + " / " + str(counts["rooms"])),
             ("median time to finish", (str(int(median)) + " s") if median is not None else "—")]
    return "<dl>" + "".join('<dt>' + esc(k) + '</dt><dd data-outcome="' + esc(k) + '">' + esc(v) + "</dd>"
                            for k, v in items) + "</dl>"


def problem_item(problem):
    text = esc(problem["kind"]) + ": " + esc(problem.get("detail"))
    if problem.get("room"):
        text += " — room " + esc(problem["room"])
    if problem.get("participant"):
        text += " — participant " + esc(problem["participant"])
    return '<li data-problem="' + esc(problem["kind"]) + '">' + text + "</li>"


def action_item(action):
    what = action.get("experiment") or action.get("room") or action.get("sid") or ""
    text = esc(action.get("action")) + " " + esc(what)
    if action.get("reason"):
        text += " — " + esc(action["reason"])
    return "<li>" + text + " (admin " + esc(action.get("admin")) + ")</li>"


def study_section(name, study):
    scenes = ", ".join(esc(s) + ": " + str(n) for s, n in study["scenes"].items()) or "nobody here"
    door = button("Reopen to new arrivals", "reopen_study", experiment=name) if study["closed"] else \
        button("Close to new arrivals", "close_study", experiment=name)
    problems = "".join(problem_item(p) for p in study["problems"])
    return ('<section data-study="' + esc(name) + '" data-closed="' + ("1" if study["closed"] else "0") + '">'
            + "<h2>" + esc(name) + (" <em>(closed to new arrivals)</em>" if study["closed"] else "") + "</h2>"
            + "<p>" + door + "</p><p>Participants per scene: " + scenes + "</p>"
            + "<h3>Waiting</h3>" + waiting_table(name, study["waiting"])
            + "<h3>Rooms</h3>" + rooms_table(name, study["rooms"])
            + "<h3>Problems</h3>" + ("<ul>" + problems + "</ul>" if problems else '<p class="note">None.</p>')
            + "<h3>Outcomes so far</h3>" + outcomes_list(study["outcomes"]) + "</section>")


class Monitor:
    def __init__(self):
        self.body = Body()
        self.pushes = 0
        self.socket = GameSocket({"ticket": CONFIG["ticket"]}, self.body, CONFIG["namespace"])
        self.socket.on("picture", self.draw)
        self.socket.sock.on("connect_error", self.refused)
        document.getElementById("studies").addEventListener("click", self.clicked)

    def refused(self, err, *args):
        document.getElementById("status").textContent = "not connected: " + str(js.String(err.message))

    def draw(self, picture):
        names = sorted(picture["studies"])
        document.getElementById("studies").innerHTML = "".join(
            study_section(n, picture["studies"][n]) for n in names)
        document.getElementById("actions").innerHTML = "".join(action_item(a) for a in picture["actions"])
        self.pushes += 1
        self.body.attr("pushes", self.pushes)
        document.getElementById("status").textContent = "live · " + str(self.pushes) + " updates"

    def clicked(self, event):
        target = event.target
        action = target.getAttribute("data-action")
        if not action:
            return
        message = {"action": action, "csrf": CONFIG["csrf"]}
        for key in ("experiment", "room", "sid"):
            value = target.getAttribute("data-" + key)
            if value:
                message[key] = str(value)
        if action == "end_room":
            reason = js.window.prompt("Why end room " + message["room"] + "? (stored with the room)")
            if not reason:
                return
            message["reason"] = str(reason)
        import asyncio

        asyncio.create_task(self.send(message))

    async def send(self, message):
        ack = await self.socket.call("act", message)
        self.body.attr("last-action", message["action"] + ":" + ("ok" if ack.get("ok") else "refused"))
        if not ack.get("ok"):
            js.window.alert("Not done: " + str(ack.get("error")))


Monitor()
