import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import uuid  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def postgres():
    """One real throwaway Postgres server for the whole test run (tests/postgres.py)."""
    from tests.postgres import start_postgres

    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def any_database(request, tmp_path):
    """A fresh, empty database of each kind: a SQLite path or a postgresql:// URL."""
    if request.param == "sqlite":
        return tmp_path / "data" / "coplay.sqlite"
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:16]}")
