from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from tests.e2e.browser import PageWatch, launch


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


@pytest.fixture
def new_page(browser):
    """Fresh browser contexts (no shared localStorage) with request/console recording."""
    contexts = []

    def make(init_script: str | None = None):
        ctx = browser.new_context()
        contexts.append(ctx)
        page = ctx.new_page()
        if init_script:
            page.add_init_script(init_script)
        return page, PageWatch(page)

    yield make
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def servers(tmp_path):
    """Start real servers; all are stopped at the end of the test."""
    from tests.servers import start_server

    running = []

    def start(**kwargs):
        workdir = tmp_path / f"srv{len(running)}"
        workdir.mkdir()
        server = start_server(workdir, **kwargs)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()
