"""The page's visible state. <body> carries data-stage / data-frame (and friends) so
tests, ours and anyone's, can follow the page without reading pixels."""

from js import document

STAGES = ("loading", "installing", "ready", "waiting", "playing", "done", "error",
          "consent", "instructions", "survey", "end")
SECTIONS = ("loader", "game", "message", "error", "scene")


def _el(name):
    return document.getElementById(name)


class Ui:
    def __init__(self):
        self.body = document.body
        self.stage = "loading"
        self.percent = 0
        self.scene = "game"  # the boot progress shows only while the game scene is up
        self.boot = "loading"  # loading -> installing -> booted

    def attr(self, name, value):
        self.body.setAttribute("data-" + name, str(value))

    def show(self, *names):
        for name in SECTIONS:
            if name in names:
                _el(name).removeAttribute("hidden")
            else:
                _el(name).setAttribute("hidden", "")

    def set_stage(self, stage):
        if self.stage == "error":
            return  # an error screen stays up: never paper over it
        self.stage = stage
        self.attr("stage", stage)

    def boot_stage(self, stage):
        self.boot = stage
        if self.scene == "game" and stage != "booted":
            self.set_stage(stage)

    def show_scene(self, kind):
        self.scene = kind
        self.set_stage(kind)
        self.show("scene")

    def enter_game(self):
        """The game scene starts: show the loader if the env is still loading."""
        self.scene = "game"
        if self.boot != "booted":
            self.set_stage(self.boot)
            self.show("loader")

    def progress(self, message, percent):
        if self.stage not in ("loading", "installing"):
            return
        _el("loader-message").textContent = message
        # a loader bar that goes backwards looks broken; progress only moves forward
        pct = max(self.percent, min(100, int(percent)))
        self.percent = pct
        _el("loader-bar").value = pct
        _el("loader-pct").textContent = str(pct) + "%"

    def message(self, text, also_game=False):
        _el("message-text").textContent = text
        self.show("message", "game") if also_game else self.show("message")

    def playing(self):
        self.show("game")

    def hud(self, text):
        _el("hud").textContent = text

    def frame(self, n):
        self.attr("frame", n)

    def error(self, text):
        self.set_stage("error")
        self.stage = "error"
        self.attr("stage", "error")
        _el("error-message").textContent = text
        self.show("error")
