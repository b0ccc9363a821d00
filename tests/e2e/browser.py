"""Chromium through Playwright, configured for this machine (Debian chromium, no
sandbox as root, no background traffic to Google)."""

from __future__ import annotations

import time
from urllib.parse import urlparse

from pilot.browsers import CHROMIUM, CHROMIUM_ARGS  # one place for this machine's Chromium flags

# Records the longest gap between 16 ms timer ticks on the main thread.
STALL_PROBE = """
(() => {
  const ticks = [];
  window.__coplayTicks = ticks;
  let last = performance.now();
  setInterval(() => { const now = performance.now(); ticks.push([now, now - last]); last = now; }, 16);
})();
"""


# Records every data-stage change and every loader message, in order.
STAGE_RECORDER = """
(() => {
  const seen = {stages: [], messages: []};
  window.__coplaySeen = seen;
  new MutationObserver(() => {
    const stage = document.body && document.body.dataset.stage;
    if (stage && seen.stages[seen.stages.length - 1] !== stage) seen.stages.push(stage);
    const msg = document.getElementById('loader-message');
    const pct = document.getElementById('loader-pct');
    const text = msg && pct ? msg.textContent + ' ' + pct.textContent : null;
    if (text && seen.messages[seen.messages.length - 1] !== text) seen.messages.push(text);
  }).observe(document, {subtree: true, attributes: true, childList: true, characterData: true});
})();
"""


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


class PageWatch:
    """Collects what a page did: every request URL, console errors, page errors."""

    def __init__(self, page):
        self.page = page
        self.requests: list[str] = []
        self.console: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("websocket", lambda ws: self.requests.append(ws.url))
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def foreign_requests(self, origin: str) -> list[str]:
        """Requests to anything but the server's origin (blob:/data: URLs made by the
        page itself stay local)."""
        allowed = urlparse(origin).netloc
        out = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("blob", "data"):
                inner = urlparse(url[len(parsed.scheme) + 1:]) if parsed.scheme == "blob" else None
                if inner is None or inner.netloc == allowed:
                    continue
            if parsed.netloc != allowed:
                out.append(url)
        return out

    def dump(self) -> str:
        return "\n".join(self.console[-40:] + self.errors[-10:])


def body(page, name: str) -> str | None:
    return page.get_attribute("body", f"data-{name}")


def wait_stage(page, *stages: str, timeout: float = 60.0) -> str:
    selector = ", ".join(f"body[data-stage={s}]" for s in stages)
    page.wait_for_selector(selector, timeout=timeout * 1000, state="attached")
    return body(page, "stage")


def wait_until(predicate, timeout: float, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def marks(page) -> dict[str, float]:
    return page.evaluate(
        "Object.fromEntries(performance.getEntriesByType('mark')"
        ".filter(m => m.name.startsWith('coplay:')).map(m => [m.name.slice(7), m.startTime]))")


def longest_stall(page, start: float, end: float) -> float:
    """Longest stretch without a probe tick inside [start, end] (ms since navigation);
    a gap straddling a window edge counts only for its part inside the window."""
    ticks = page.evaluate("window.__coplayTicks")
    gaps = [min(t, end) - max(t - gap, start) for (t, gap) in ticks if t > start and t - gap < end]
    return max(gaps) if gaps else float("nan")
