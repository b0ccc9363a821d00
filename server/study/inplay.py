"""In-play screening: the rules of ``screening.during_play`` (server/study/screening.py,
``DuringPlay``) checked while a game runs — a connection that stays slow, a tab left in the
background — with a warning first and then exclusion.

The server decides. Every playing page pings the ``rtt`` event once a second with its vitals
(the last round trip it measured, whether its tab is hidden, its frame, scene and episode;
pages/vitals.py), in single-player games as in rooms, and the relay's ``rtt`` handler hands
them here. Deciding here rather than on the page keeps the rules, the clock that times an
absence and the record in one place: a page that is modified, frozen or throttled in a
background tab cannot skip the decision or time its own absence, and a room's dropout
handling runs where the room is. The page only shows what the ping's acknowledgement says
(``inplay``: a warning to show, or the exclusion with the screening's message, completion
code or redirect) and stops its game.

- RTT: ``rtt_window`` consecutive reports over ``max_rtt_ms`` (a report under the limit
  starts the count again) → a warning; the next such run, later in the visit → exclusion.
- Tab away: timed by the server's clock from the first ping reporting the tab hidden (a
  lower bound, within one ping interval: nobody is excluded early; a background tab's
  throttled pings are late, never early). Hidden ``tab_away_warn_s`` → a warning, once per
  absence, sent at once: the page shows it, so it is there when the participant comes back;
  hidden ``tab_away_exclude_s`` → exclusion. A new episode starts the absence and the RTT
  run afresh (the RTT warning stays).

Every warning (``inplay_warning``) and exclusion (``inplay_excluded``) is an event with the
reason, the figures, the frame, the scene and the episode id. An exclusion ends the
participant's progress with the outcome ``screened_out`` (as entry screening does, so a
reload shows the message again), stores the running episode with status ``excluded``, and in
a room hands the seat to the room's ``dropout`` policy (``exclude_seat``, the relay's). The
watches live in this process's memory, per participant (a reload keeps its warnings)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.data.storage import Store
from server.study.experiment import Experiment
from server.study.screening import DuringPlay

# (sid, session, reason) -> None: the relay gives the participant's seat, if any, to the dropout policy
ExcludeSeat = Callable[[str, dict, str], Awaitable[Any]]


@dataclass
class Finding:
    action: str  # "warn" or "exclude"
    rule: str  # "rtt" or "tab_away"
    reason: str  # a short key and what was seen, as entry screening's reasons
    figures: dict[str, Any]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 1)


@dataclass
class Watch:
    """One participant's in-play record: the current run of slow pings, whether they were
    warned, and the absence under way. Pure: the caller passes the time."""

    episode_id: str | None = None
    over: list[float] = field(default_factory=list)  # RTTs of the current run over the limit
    rtt_warned: bool = False
    hidden_since: float | None = None  # the first ping that reported the tab hidden
    away_warned: bool = False

    def observe(self, rules: DuringPlay, vitals: dict[str, Any], now: float) -> list[Finding]:
        episode = vitals.get("episode_id")
        if episode != self.episode_id:
            self.episode_id = episode
            self.over = []
            self.hidden_since = None
            self.away_warned = False
        found = [self._tab(rules, vitals.get("hidden"), now), self._rtt(rules, vitals.get("rtt_ms"))]
        return [f for f in found if f is not None]

    def _rtt(self, rules: DuringPlay, rtt: float | None) -> Finding | None:
        if rules.max_rtt_ms is None or rtt is None:
            return None
        if rtt <= rules.max_rtt_ms:
            self.over = []
            return None
        self.over.append(round(rtt, 1))
        if len(self.over) < rules.rtt_window:
            return None
        run, self.over = self.over, []
        reason = (f"rtt: {len(run)} pings in a row over {rules.max_rtt_ms:g} ms "
                  f"(median {_median(run):g} ms)")
        figures = {"rtt_ms": run, "max_rtt_ms": rules.max_rtt_ms, "rtt_window": rules.rtt_window}
        if not self.rtt_warned:
            self.rtt_warned = True
            return Finding("warn", "rtt", reason, figures)
        return Finding("exclude", "rtt", reason, figures)

    def _tab(self, rules: DuringPlay, hidden: bool | None, now: float) -> Finding | None:
        warn_s, exclude_s = rules.tab_away_warn_s, rules.tab_away_exclude_s
        if (warn_s is None and exclude_s is None) or hidden is None:
            return None
        if not hidden:  # back: the next absence is timed (and warned of) afresh
            self.hidden_since = None
            self.away_warned = False
            return None
        if self.hidden_since is None:
            self.hidden_since = now
        away = now - self.hidden_since
        figures = {"hidden_s": round(away, 1), "tab_away_warn_s": warn_s, "tab_away_exclude_s": exclude_s}
        if exclude_s is not None and away >= exclude_s:
            reason = f"tab_away: hidden {away:.1f} s >= {exclude_s:g} s"
            return Finding("exclude", "tab_away", reason, figures)
        if warn_s is not None and away >= warn_s and not self.away_warned:
            self.away_warned = True
            return Finding("warn", "tab_away", f"tab_away: hidden {away:.1f} s >= {warn_s:g} s", figures)
        return None


class InPlay:
    def __init__(self, store: Store, experiments: dict[str, Experiment], exclude_seat: ExcludeSeat,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.experiments = experiments
        self.exclude_seat = exclude_seat
        self.clock = clock
        self.watches: dict[tuple[str, str], Watch] = {}  # (experiment, participant) -> watch
        self.stats = {"warnings": 0, "exclusions": 0}

    async def check(self, sid: str, session: dict, vitals: dict[str, Any]) -> dict | None:
        """One ping's vitals: None, or what the page must do (the ``inplay`` of the ack)."""
        exp = self.experiments[session["experiment"]]
        rules = exp.screening.during_play if exp.screening is not None else None
        if rules is None or not vitals.get("scene"):  # only a game's pings carry their scene
            return None
        key = (exp.name, session["participant_id"])
        findings = self.watches.setdefault(key, Watch()).observe(rules, vitals, self.clock())
        reply = None
        for finding in findings:
            if finding.action == "exclude":
                return await self._exclude(sid, session, exp, finding, vitals)
            self.stats["warnings"] += 1
            episode = await self._episode(session, vitals)
            await self.store.add_event(session["participant_id"], episode, "inplay_warning",
                                       self._detail(finding, vitals, episode))
            reply = {"action": "warn", "rule": finding.rule, "reason": finding.reason,
                     "message": rules.rtt_warning if finding.rule == "rtt" else rules.tab_away_warning}
        return reply

    async def _episode(self, session: dict, vitals: dict[str, Any]) -> str | None:
        """The episode the page reports playing, when it is this participant's."""
        episode = vitals.get("episode_id")
        if episode is None or await self.store.episode_owner(episode) != session["participant_id"]:
            return None
        return episode

    @staticmethod
    def _detail(finding: Finding, vitals: dict[str, Any], episode: str | None) -> dict[str, Any]:
        return {"reason": finding.reason, "rule": finding.rule, **finding.figures,
                "frame": vitals.get("frame"), "scene": vitals.get("scene"), "episode_id": episode}

    async def _exclude(self, sid: str, session: dict, exp: Experiment, finding: Finding,
                       vitals: dict[str, Any]) -> dict:
        screening = exp.screening
        pid = session["participant_id"]
        self.watches.pop((exp.name, pid), None)
        _, outcome = await self.store.get_progress(pid, exp.name)
        if outcome != "screened_out":  # once: a second tab of the same participant changes nothing
            self.stats["exclusions"] += 1
            episode = await self._episode(session, vitals)
            detail = self._detail(finding, vitals, episode)
            await self.store.add_event(pid, episode, "inplay_excluded", detail)
            scenes = exp.scenes_for(await self.store.get_condition(pid, exp.name), pid)
            await self.store.set_progress(pid, exp.name, len(scenes), "screened_out")
            if episode is not None:
                await self.store.exclude_episode(episode, vitals.get("frame"))
            await self.exclude_seat(sid, session, finding.reason)
        return {"action": "exclude", "rule": finding.rule, "reason": finding.reason,
                "message": screening.message, "completion_code": screening.completion_code,
                "redirect": screening.redirect}
