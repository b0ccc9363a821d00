"""After the pilot: is the data sound? Each check compares what the simulated participants
did (they know every frame they uploaded and every answer they gave) with the database,
and the export (downloaded like a researcher does, /admin/export/EXPERIMENT.zip) with both.
A check that fails says what differs, for whom."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import text

from pilot.participant import Outcome
from server.data.storage import create_engine

EXPORT_TABLES = ("participants", "episodes", "steps", "survey_responses", "progress", "rooms")


_engines: dict[str, Any] = {}  # one read-only engine per database for all the checks' queries


async def _rows(database: str | Path, sql: str, **params: Any) -> list[tuple]:
    engine = _engines.get(str(database))
    if engine is None:
        engine = _engines[str(database)] = create_engine(database, readonly=True)
    async with engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


async def close_engines() -> None:
    for engine in _engines.values():
        await engine.dispose()
    _engines.clear()


async def check_data(database: str | Path, experiment: str, outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """[{"check", "ok", "detail"}]."""
    results = []

    def report(check: str, problems: list[str], detail: str) -> None:
        results.append({"check": check, "ok": not problems, "detail": "; ".join(problems[:5]) or detail})

    episodes = [(o.participant, e) for o in outcomes for e in o.episodes]
    problems = []
    stored_steps = 0
    for pid, ep in episodes:
        frames = [
            f
            for (f,) in await _rows(
                database, "SELECT frame FROM steps WHERE episode_id = :e ORDER BY frame", e=ep["episode"]
            )
        ]
        stored_steps += len(frames)
        if frames != sorted(ep["uploaded"]):
            missing = sorted(set(ep["uploaded"]) - set(frames))
            extra = sorted(set(frames) - set(ep["uploaded"]))
            problems.append(
                f"{pid} episode {ep['episode'][:8]}: {len(frames)} steps stored, "
                f"{len(ep['uploaded'])} played (missing {missing[:3]}, unexpected {extra[:3]})"
            )
    report(
        "every step of every episode stored exactly once",
        problems,
        f"{stored_steps} steps of {len(episodes)} episodes",
    )

    problems = []
    for pid, ep in episodes:
        row = await _rows(
            database,
            "SELECT status, frames, scene_id, episode_index FROM episodes WHERE id = :e",
            e=ep["episode"],
        )
        if not row:
            problems.append(f"{pid}: episode {ep['episode'][:8]} not stored")
        elif row[0][0] != ep["status"] or row[0][2] != ep["scene"]:
            problems.append(
                f"{pid}: episode {ep['episode'][:8]} stored {row[0][0]!r} in {row[0][2]!r}, "
                f"played {ep['status']!r} in {ep['scene']!r}"
            )
    report("every episode stored with its scene and how it ended", problems, f"{len(episodes)} episodes")

    problems = []
    answered = 0
    for o in outcomes:
        for scene_id, answers in o.answers.items():
            rows = await _rows(
                database,
                "SELECT question_id, answer FROM survey_responses WHERE participant_id = :p"
                " AND experiment = :x AND (scene_id = :s OR :s = '*')",  # "*": a page's, every survey
                p=o.participant,
                x=experiment,
                s=scene_id,
            )
            stored = {q: json.loads(a) for q, a in rows}
            answered += len(stored)
            if stored != answers:
                problems.append(f"{o.participant} survey {scene_id}: stored {stored}, answered {answers}")
    report("survey answers present", problems, f"{answered} answers")

    problems = []
    browsed = 0
    for o in outcomes:
        if not o.browser:
            continue
        # a page's episodes: only the database knows their ids; every frame once, none missing
        rows = await _rows(
            database,
            "SELECT e.id, e.frames, e.status, COUNT(s.frame), MIN(s.frame), MAX(s.frame)"
            " FROM episodes e LEFT JOIN steps s ON s.episode_id = e.id WHERE e.participant_id = :p"
            " GROUP BY e.id, e.frames, e.status",
            p=o.participant,
        )
        for eid, frames, status, count, low, high in rows:
            browsed += 1
            if (
                status not in ("completed", "time_limit")
                or count != frames
                or (count and high - low + 1 != count)
            ):
                problems.append(
                    f"{o.participant} (browser) episode {eid[:8]}: {status}, {count} steps stored "
                    f"of {frames} (frames {low}..{high})"
                )
        if o.outcome == "finished" and not rows:
            problems.append(f"{o.participant} (browser): finished without an episode stored")
    report("a browser page's episodes complete, every frame once", problems, f"{browsed} episodes")

    problems = [
        f"{o.participant}: the server refused {event}: {error}"
        for o in outcomes
        for event, error in o.rejected
    ]
    report("no message refused by the server", problems, "0 refused")
    return results


def download_export(url: str, experiment: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/admin/export/{experiment}.zip", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        data = response.read()
    tables: dict[str, list[dict[str, str]]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read(f"{experiment}/manifest.json"))
        for table in EXPORT_TABLES:
            with zf.open(f"{experiment}/{table}.csv") as fh:
                tables[table] = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8")))
    return {"manifest": manifest, "tables": tables}


async def check_export(
    url: str, database: str | Path, experiment: str, token: str, outcomes: list[Outcome]
) -> dict[str, Any]:
    try:
        export = download_export(url, experiment, token)
    except Exception as exc:  # noqa: BLE001 - the check names it
        return {"check": "export readable", "ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    counts = {
        "participants": "SELECT COUNT(*) FROM participants WHERE experiment = :x",
        "episodes": "SELECT COUNT(*) FROM episodes WHERE experiment = :x",
        "steps": "SELECT COUNT(*) FROM steps s JOIN episodes e ON e.id = s.episode_id"
        " WHERE e.experiment = :x",
        "survey_responses": "SELECT COUNT(*) FROM survey_responses WHERE experiment = :x",
        "rooms": "SELECT COUNT(*) FROM rooms WHERE experiment = :x",
    }
    problems = []
    for table, sql in counts.items():
        ((n,),) = await _rows(database, sql, x=experiment)
        in_csv = len(export["tables"][table])
        in_manifest = export["manifest"]["counts"].get(table)
        if not n == in_csv == in_manifest:
            problems.append(f"{table}: database {n}, export CSV {in_csv}, manifest {in_manifest}")
    mine = {e["episode"] for o in outcomes for e in o.episodes}
    exported = sum(1 for row in export["tables"]["steps"] if row["episode_id"] in mine)
    played = sum(len(e["uploaded"]) for o in outcomes for e in o.episodes)
    if exported != played:
        problems.append(f"the export has {exported} of the pilot's {played} steps")
    return {
        "check": "export readable, its counts matching the database",
        "ok": not problems,
        "detail": "; ".join(problems) or ", ".join(f"{t} {len(r)}" for t, r in export["tables"].items()),
    }
