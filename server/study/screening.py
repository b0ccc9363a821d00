"""Entry screening, before the first scene: the page reports what it runs on (user agent,
window size, the browser features it has, the median round trip of a few pings) and the
server decides against the experiment's ``screening`` settings, so the rules live in one
place and every exclusion is stored with its reason. An excluded participant's progress is
set past the last scene with the outcome ``screened_out``: a reload shows the message again.
``during_play`` (``DuringPlay``) holds the rules checked while a game runs (server/study/inplay.py)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# phones and tablets, as their browsers name themselves
MOBILE = re.compile(r"Mobi|Android|iPhone|iPad|iPod|Tablet|Silk|Kindle|Opera Mini", re.IGNORECASE)
BROWSER_VERSION = re.compile(r"(Firefox|Chrome|Chromium|Edg|Version)/(\d+)")
FEATURES = ("WebAssembly", "Worker", "SharedArrayBuffer", "crossOriginIsolated")


class DuringPlay(BaseModel):
    """``screening.during_play``: the rules checked while a game runs, from the vitals the
    page sends with its RTT pings (every RTT_EVERY_MS, 1 s). Each rule is off until set.

    RTT: ``rtt_window`` *consecutive* pings over ``max_rtt_ms`` (one ping under it starts the
    count again) bring a warning on the page; the next such run, at any later time in the
    visit, excludes the participant. Tab away: hidden for ``tab_away_warn_s`` brings a warning
    (once per absence, shown at once and still there on return), hidden for
    ``tab_away_exclude_s`` excludes. Exclusion ends the participant's progress like entry
    screening, with the same ``message``, ``completion_code`` and ``redirect``."""

    model_config = ConfigDict(extra="forbid")
    max_rtt_ms: float | None = Field(default=None, gt=0)
    rtt_window: int = Field(5, ge=1, le=600)
    tab_away_warn_s: float | None = Field(default=None, gt=0)
    tab_away_exclude_s: float | None = Field(default=None, gt=0)
    rtt_warning: str = "Your connection is slow, so the game may lag. If it stays slow, the study will end."
    tab_away_warning: str = ("Please keep this tab in front while you play: if it stays in the background "
                             "too long, the study will end.")

    @field_validator("tab_away_exclude_s")
    @classmethod
    def _after_the_warning(cls, value: float | None, info: ValidationInfo) -> float | None:
        warn = info.data.get("tab_away_warn_s")
        if value is not None and warn is not None and value <= warn:
            raise ValueError(f"must be longer than tab_away_warn_s ({warn:g} s), or the warning never shows")
        return value


class Screening(BaseModel):
    """``screening`` in an experiment: each rule is off until set."""

    model_config = ConfigDict(extra="forbid")
    mobile: bool = True  # False: phones and tablets are screened out
    min_window: tuple[int, int] | None = None  # (width, height) in CSS pixels
    max_ping_ms: float | None = Field(default=None, gt=0)  # median round trip to the server
    pings: int = Field(5, ge=1, le=50)
    min_versions: dict[str, int] = {}  # e.g. {"Chrome": 110, "Firefox": 115}
    blocklist: list[str] = []  # user-agent substrings never admitted
    message: str = "Sorry, this study cannot run on your device or connection. Thank you for your interest."
    completion_code: str | None = None
    redirect: str | None = None
    during_play: DuringPlay | None = None  # checks while a game runs; None: none


class Facts(BaseModel):
    """What the page reports about itself."""

    model_config = ConfigDict(extra="forbid")
    user_agent: str = Field(max_length=1000)
    window: tuple[int, int]
    features: dict[str, bool] = {}
    ping_ms: float | None = Field(default=None, ge=0)


def verdict(rules: Screening, facts: Facts) -> str | None:
    """The reason the participant is screened out (a short key and what was seen), or None."""
    ua = facts.user_agent
    missing = [f for f in FEATURES if facts.features.get(f) is False]
    if missing:
        return "browser_features: missing " + ", ".join(missing)
    for needle in rules.blocklist:
        if needle.lower() in ua.lower():
            return f"browser_blocked: {needle}"
    if rules.min_versions:
        found = {name: int(v) for name, v in BROWSER_VERSION.findall(ua)}
        for name, least in rules.min_versions.items():
            if name in found and found[name] < least:
                return f"browser_version: {name} {found[name]} < {least}"
    if not rules.mobile and MOBILE.search(ua):
        return "device: phone or tablet"
    if rules.min_window is not None:
        w, h = facts.window
        if w < rules.min_window[0] or h < rules.min_window[1]:
            return f"window: {w}x{h} < {rules.min_window[0]}x{rules.min_window[1]}"
    if rules.max_ping_ms is not None and (facts.ping_ms is None or facts.ping_ms > rules.max_ping_ms):
        return f"connection: median ping {facts.ping_ms} ms > {rules.max_ping_ms:g} ms"
    return None


def page_rules(rules: Screening | None) -> dict[str, Any] | None:
    """What the page needs to gather the facts (the decision stays on the server)."""
    if rules is None:
        return None
    # during_play: single-player games run the RTT meter too (multiplayer pages always do)
    return {"pings": rules.pings if rules.max_ping_ms is not None else 0,
            "during_play": rules.during_play is not None}
