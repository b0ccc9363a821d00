"""Keyboard state -> one action per frame. Pure Python (no browser), so pytest checks it.

The most recently pressed held key wins; a key pressed and released between two frames
still counts once, so quick taps are never lost."""


def normalize(key):
    return key.lower() if len(key) == 1 else key


class ActionSelector:
    def __init__(self, controls, default_action):
        self.configure(controls, default_action)

    def configure(self, controls, default_action):
        """A new game scene's keys (each scene may have its own); nothing held carries over."""
        self.controls = {}
        for key in controls:
            self.controls[normalize(key)] = controls[key]
        self.default = default_action
        self.held = []
        self.tapped = None

    def key_down(self, key):
        key = normalize(key)
        if key not in self.controls:
            return False
        if key not in self.held:  # auto-repeat of a held key is not a new press
            self.held.append(key)
            self.tapped = key
        return True

    def key_up(self, key):
        key = normalize(key)
        if key in self.held:
            self.held.remove(key)
        return key in self.controls

    def clear(self):
        # focus lost: keyup events will not arrive
        self.held = []
        self.tapped = None

    def action(self):
        """The action for the next frame."""
        if self.tapped is not None:
            key = self.tapped  # a press since the last frame wins once, even over a held key
            self.tapped = None
        elif self.held:
            key = self.held[-1]
        else:
            return self.default
        return self.controls[key]
