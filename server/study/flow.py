"""Where each participant is in the study (scene by scene), so a reload resumes at the
same scene and a finished participant sees the end scene, not a second run. Survey
answers are checked against the survey's questions before anything is stored."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol.scenes import next_scene
from server.data.storage import Store
from server.monitor.doors import StudyDoors
from server.monitor.presence import Presence
from server.study.experiment import Experiment
from server.study.games import games_config
from server.study.packages import PackageSource
from server.study.scenes import Survey
from server.study.screening import Facts, verdict
from server.transport.events import Hello, SceneDone
from server.transport.sockets import Rejected, SocketHandlers

MAX_TEXT = 5000


def check_answers(survey: Survey, answers: dict[str, Any] | None) -> dict[str, Any]:
    answers = answers or {}
    known = {q.id for q in survey.questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise Rejected(f"unknown question(s): {', '.join(unknown)}")
    clean = {}
    for q in survey.questions:
        value = answers.get(q.id)
        if value is None or value == "":
            if q.required:
                raise Rejected(f"question {q.id!r} needs an answer")
            continue
        if q.kind in ("likert", "choice") and str(value) not in q.options:
            raise Rejected(f"question {q.id!r}: {value!r} is not one of its options")
        if q.kind == "text" and len(str(value)) > MAX_TEXT:
            raise Rejected(f"question {q.id!r}: answer longer than {MAX_TEXT} characters")
        clean[q.id] = value
    return clean


class Flow:
    def __init__(self, sockets: SocketHandlers, store: Store, experiments: dict[str, Experiment],
                 packages: PackageSource, presence: Presence | None = None, doors: StudyDoors | None = None):
        self.store = store
        self.presence = presence or Presence()
        self.doors = doors or StudyDoors()
        sockets.disconnect_hooks.append(self._gone)
        self.packages = packages
        self.experiments = experiments
        self.assigning = asyncio.Lock()  # count-then-assign must not interleave
        sockets.register("hello", Hello, self.hello)
        sockets.register("scene_done", SceneDone, self.scene_done)
        sockets.register("screen", Facts, self.screen)

    async def hello(self, sid: str, session: dict, p: Hello) -> dict:
        """Where the participant is, and the condition (and env config) they play under."""
        exp = self.experiments[session["experiment"]]
        pid = session["participant_id"]
        if self.doors.is_closed(exp.name) and not await self.store.has_session(pid, exp.name):
            # a new arrival while the researcher has closed the study (no condition drawn for
            # them); whoever had already started goes on
            return {"ok": True, "closed": True, "message": exp.closed_message}
        index, outcome = await self.store.get_progress(pid, exp.name)
        condition = None
        if exp.conditions:
            async with self.assigning:
                condition = await self.store.assign_condition(pid, exp.name, [c.name for c in exp.conditions])
        if p.stream is not None:
            await self.store.add_session(pid, exp.name, p.stream, p.client)
        scenes = exp.scenes_for(condition, pid)
        self.presence.arrive(sid, pid, exp.name, index, scenes[index].id if index < len(scenes) else None)
        reply = {"ok": True, "scene_index": index, "outcome": outcome, "condition": condition,
                 "scenes": [s.model_dump(mode="json") for s in scenes]}
        if condition is not None:  # the page holds the games of the experiment's own path
            reply["games"] = games_config(exp, condition, self.packages.for_experiment(exp))
        return reply

    async def _gone(self, sid: str) -> None:
        self.presence.gone(sid)

    async def screen(self, sid: str, session: dict, p: Facts) -> dict:
        """Entry screening: admitted, or screened out with the experiment's message (stored
        with the reason; the participant's progress ends there, so a reload sees it again)."""
        exp = self.experiments[session["experiment"]]
        rules = exp.screening
        if rules is None:
            return {"ok": True, "admitted": True}
        pid = session["participant_id"]
        out = {"ok": True, "admitted": False, "message": rules.message,
               "completion_code": rules.completion_code, "redirect": rules.redirect}
        _, outcome = await self.store.get_progress(pid, exp.name)
        if outcome == "screened_out":
            return out
        reason = verdict(rules, p)
        if reason is None:
            return {"ok": True, "admitted": True}
        scenes = exp.scenes_for(await self.store.get_condition(pid, exp.name), pid)
        await self.store.add_event(pid, None, "screened_out", {"reason": reason, **p.model_dump(mode="json")})
        await self.store.set_progress(pid, exp.name, len(scenes), "screened_out")
        return {**out, "reason": reason}

    async def scene_done(self, sid: str, session: dict, p: SceneDone) -> dict:
        exp = self.experiments[session["experiment"]]
        pid = session["participant_id"]
        scenes = exp.scenes_for(await self.store.get_condition(pid, exp.name), pid)
        index, _ = await self.store.get_progress(pid, exp.name)
        if p.index < index:
            return {"ok": True, "scene_index": index}  # a resend of something already recorded
        if p.index != index or index >= len(scenes):
            raise Rejected(f"scene {p.index} is not this participant's current scene ({index})")
        scene = scenes[index]
        if p.scene_id != scene.id:
            raise Rejected(f"scene {index} is {scene.id!r}, not {p.scene_id!r}")
        answers = check_answers(scene, p.answers) if isinstance(scene, Survey) else None
        following = next_scene([s.type for s in scenes], index, p.outcome)
        await self.store.set_progress(pid, exp.name, following, p.outcome, answers, scene.id)
        self.presence.moved(sid, following, scenes[following].id if following < len(scenes) else None)
        await self.store.add_event(pid, None, "scene", {"index": index, "id": scene.id, "outcome": p.outcome})
        return {"ok": True, "scene_index": following}
