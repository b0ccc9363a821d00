"""Simulated participants in real headless Chromium pages (``--browsers K``), so the page's
own code is in the pilot: the same URL a recruiter would send (crowdsourcing ids in it),
consent clicked, instructions read, survey answered in its form, games played with random
key presses at the page's own frame rate. The page tells where it is by <body data-stage>
(pages/ui.py); the data it stored is checked like the other participants' (by the
database, since only the page knows its episode ids)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from typing import Any
from urllib.parse import urlencode

from pilot.participant import Outcome

CHROMIUM = os.environ.get("COPLAY_CHROMIUM", "/usr/bin/chromium")
# this machine's Chromium: no sandbox as root, no background traffic (tests/e2e/browser.py)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]
STUDY_TIMEOUT_S = 1800.0


async def launch(playwright: Any) -> Any:
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


async def _answer_survey(page: Any, rng: random.Random, index: int) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for block in await page.query_selector_all("#scene-body .question"):
        qid = (await block.get_attribute("id"))[2:]
        optional = await block.query_selector("em") is not None
        if optional and rng.random() < 0.5:
            continue
        area = await block.query_selector("textarea")
        if area is not None:
            text = f"pilot answer {index}"
            await area.fill(text)
            answers[qid] = text
            continue
        radios = await block.query_selector_all("input[type=radio]")
        choice = rng.choice(radios)
        await choice.check()
        answers[qid] = await choice.get_attribute("value")
    await page.click("#survey-submit")
    return answers


async def browser_participant(
    browser: Any,
    url: str,
    experiment: str,
    pid: str,
    ids: dict[str, str],
    page_config: dict[str, Any],
    declines: bool,
    seed: str,
) -> Outcome:
    rng = random.Random(seed)
    result = Outcome(pid, browser=True)
    context = await browser.new_context()
    page = await context.new_page()
    foreign: list[str] = []
    page.on(
        "request", lambda r: foreign.append(r.url) if not r.url.startswith((url, "blob:", "data:")) else None
    )
    started = time.monotonic()
    seen: list[str] = []
    try:
        await page.goto(f"{url}/x/{experiment}?{urlencode(ids)}")
        while time.monotonic() - started < STUDY_TIMEOUT_S:
            stage = await page.get_attribute("body", "data-stage")
            if not seen or seen[-1] != stage:
                seen.append(stage)
            if stage == "consent":
                await page.click("#consent-decline" if declines else "#consent-agree")
                result.scenes.append(
                    {
                        "id": "consent",
                        "type": "consent",
                        "outcome": "declined" if declines else "agreed",
                        "seconds": 0,
                    }
                )
            elif stage == "instructions":
                await page.click("#instructions-next")
            elif stage == "survey":
                result.answers.setdefault("*", {}).update(
                    await _answer_survey(page, rng, len(result.answers))
                )
            elif stage == "ready":
                scene = await page.get_attribute("body", "data-scene")
                game = page_config["games"].get(scene or "", {})
                await page.keyboard.press(_key(game.get("start_key", " ")))
            elif stage == "playing":
                scene = await page.get_attribute("body", "data-scene")
                keys = list((page_config["games"].get(scene or "", {}).get("controls") or {}).keys())
                if keys:
                    await page.keyboard.press(_key(rng.choice(keys)))
            elif stage == "end":
                result.outcome = "declined" if declines else "finished"
                break
            elif stage == "done":
                result.outcome = await page.get_attribute("body", "data-outcome") or "done"
                break
            elif stage == "error":
                result.outcome = "error"
                result.error = "page: " + (await page.inner_text("#error-message"))[:500]
                break
            await asyncio.sleep(0.1)
        else:
            result.outcome, result.error = (
                "error",
                f"page still at {seen[-1]!r} after {STUDY_TIMEOUT_S:.0f} s",
            )
        if foreign:
            result.outcome, result.error = "error", f"the page requested outside the server: {foreign[:3]}"
    except Exception as exc:  # noqa: BLE001 - the report names it
        result.outcome, result.error = "error", f"browser: {type(exc).__name__}: {exc}"
    finally:
        result.seconds = round(time.monotonic() - started, 2)
        result.stages = seen
        await context.close()
    return result


def _key(key: str) -> str:
    return "Space" if key == " " else key
