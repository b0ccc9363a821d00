"""The pilot's report: per scene how many reached it, how they left it and how long it took;
the participants' outcomes and errors; the rooms by status; the data checks. As a terminal
table and as JSON; ``failures`` lists what makes the pilot fail."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from pilot.participant import Outcome


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def summary(values: list[float]) -> dict:
    """p50, p99, mean and count of a non-empty sample (the benchmarks' and the load test's)."""
    return {
        "p50": round(percentile(values, 50), 3),
        "p99": round(percentile(values, 99), 3),
        "mean": round(statistics.fmean(values), 3),
        "n": len(values),
    }


def build_report(
    experiment: str,
    outcomes: list[Outcome],
    rooms: dict[str, str | None],
    checks: list[dict[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    scenes: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        for s in o.scenes:
            entry = scenes.setdefault(
                s["id"], {"type": s["type"], "reached": 0, "outcomes": Counter(), "seconds": []}
            )
            entry["reached"] += 1
            entry["outcomes"][s["outcome"]] += 1
            entry["seconds"].append(s["seconds"])
    for entry in scenes.values():
        entry["outcomes"] = dict(entry["outcomes"])
        entry["median_s"] = round(statistics.median(entry.pop("seconds")), 2)
    errors = [{"participant": o.participant, "error": o.error} for o in outcomes if o.outcome == "error"]
    room_status = dict(Counter(str(s) for s in rooms.values()))
    failures = [f"{e['participant']}: {e['error']}" for e in errors]
    failures += [f"room {rid}: {status}" for rid, status in rooms.items() if status != "completed"]
    failures += [f"check failed: {c['check']}: {c['detail']}" for c in checks if not c["ok"]]
    return {
        "experiment": experiment,
        "participants": len(outcomes),
        "seconds": round(seconds, 1),
        "outcomes": dict(Counter(o.outcome for o in outcomes)),
        "scenes": scenes,
        "errors": errors,
        "rooms": room_status,
        "checks": checks,
        "failures": failures,
        "ok": not failures,
    }


def table(report: dict[str, Any]) -> str:
    lines = [
        f"Pilot of {report['experiment']}: {report['participants']} participants in {report['seconds']} s",
        "",
        f"{'scene':<16} {'type':<13} {'reached':>7}  {'median s':>8}  outcomes",
    ]
    for sid, s in report["scenes"].items():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items()))
        lines.append(f"{sid:<16} {s['type']:<13} {s['reached']:>7}  {s['median_s']:>8}  {outcomes}")
    lines += [
        "",
        "participants: " + ", ".join(f"{k} {v}" for k, v in sorted(report["outcomes"].items())),
        "rooms: " + (", ".join(f"{k} {v}" for k, v in sorted(report["rooms"].items())) or "none"),
        "",
    ]
    for check in report["checks"]:
        lines.append(f"[{'ok' if check['ok'] else 'FAIL'}] {check['check']}: {check['detail']}")
    if report["failures"]:
        lines += ["", "The pilot FAILED:"] + [f"  - {f}" for f in report["failures"][:30]]
    else:
        lines += ["", "The pilot passed: the study runs and its data is complete."]
    return "\n".join(lines)
