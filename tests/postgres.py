"""A real, throwaway Postgres server for tests and benchmarks: ``initdb`` into a temporary
directory, ``pg_ctl start`` on a free 127.0.0.1 port (its unix socket in that directory too),
and ``stop()`` removes everything. Postgres refuses to run as root, so under root the server
runs as the ``postgres`` system user, in a temporary directory that user owns.

Missing binaries are an error, never a skip: ``nox -s tests`` installs Debian's
``postgresql``; elsewhere set ``COPLAY_PG_BIN`` to the folder holding ``initdb``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

SUPERUSER = "coplay"


class PostgresUnavailable(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The folder with initdb/pg_ctl: $COPLAY_PG_BIN, else PATH, else the newest
    /usr/lib/postgresql/<version>/bin (Debian keeps them off PATH)."""
    if os.environ.get("COPLAY_PG_BIN"):
        candidates = [Path(os.environ["COPLAY_PG_BIN"])]
    else:
        on_path = shutil.which("initdb")
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                          key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)], reverse=True)
        candidates = ([Path(on_path).parent] if on_path else []) + versions
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise PostgresUnavailable(
        "Postgres server binaries (initdb, pg_ctl) not found in $COPLAY_PG_BIN, on PATH or in "
        "/usr/lib/postgresql/*/bin: install Debian's `postgresql` package (`nox -s tests` does) "
        "or set COPLAY_PG_BIN")


def _run_sync(coro):
    """Run a coroutine to completion from sync code, even inside a running event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _dollar(sql: str) -> str:
    """sqlite3's ``?`` placeholders as asyncpg's ``$1, $2...`` (test queries only)."""
    count = 0

    def number(_match):
        nonlocal count
        count += 1
        return f"${count}"

    return re.sub(r"\?", number, sql)


def query_url(url: str, sql: str, *args) -> list[tuple]:
    """Rows of one query (``?`` or ``$n`` placeholders) as plain tuples, like sqlite3's."""
    import asyncpg

    async def fetch():
        conn = await asyncpg.connect(dsn=url)
        try:
            return [tuple(row) for row in await conn.fetch(_dollar(sql), *args)]
        finally:
            await conn.close()

    return _run_sync(fetch())


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path
    port: int
    as_user: list[str]
    user: str = SUPERUSER
    host: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def log(self) -> str:
        return (self.base / "postgres.log").read_text(errors="replace")

    async def _connect(self, database: str):
        import asyncpg

        return await asyncpg.connect(host=self.host, port=self.port, user=self.user, database=database)

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL (postgresql://...)."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name {name!r}")

        async def create():
            conn = await self._connect("postgres")
            try:
                await conn.execute(f"CREATE DATABASE {name}")
            finally:
                await conn.close()

        _run_sync(create())
        return self.url(name)

    def query(self, database: str, sql: str, *args) -> list[tuple]:
        return query_url(self.url(database), sql, *args)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args],
                              cwd=self.base, capture_output=True, text=True, check=check)

    def stop(self) -> None:
        if self.data_dir.exists():
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30", check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def start_postgres(settings: dict[str, str] | None = None, *, durable: bool = False) -> PostgresServer:
    """Start a throwaway server. Tests run it without fsync (``durable=False``: a crash of
    the machine would lose the data, which is fine for a throwaway); benchmarks pass
    ``durable=True`` for Postgres' default, crash-safe settings."""
    bin_dir = find_bin_dir()
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="coplay-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root and `runuser` is missing: cannot start Postgres "
                                      "as the postgres user")
        try:
            shutil.chown(base, "postgres", "postgres")
        except LookupError:
            raise PostgresUnavailable("running as root, and there is no `postgres` system user to run "
                                      "Postgres as (install Debian's `postgresql` package)") from None
        as_user = ["runuser", "-u", "postgres", "--"]
    server = PostgresServer(bin_dir, base, free_port(), as_user)
    env = {**os.environ, "LC_ALL": "C"}
    try:
        init = subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(server.data_dir), "-U", SUPERUSER,
                               "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
                              cwd=base, capture_output=True, text=True, env=env)
        if init.returncode:
            raise PostgresUnavailable(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
        options = {"listen_addresses": server.host, "unix_socket_directories": str(base),
                   "max_connections": "200"}
        if not durable:
            options.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        options.update(settings or {})
        flags = f"-p {server.port} " + " ".join(f"-c {k}={v}" for k, v in options.items())
        started = server._pg_ctl("start", "-w", "-t", "60", "-l", str(base / "postgres.log"), "-o", flags,
                                 check=False)
        if started.returncode:
            log = server.log() if (base / "postgres.log").exists() else ""
            raise PostgresUnavailable(f"pg_ctl start failed ({started.returncode}):\n{started.stdout}\n"
                                      f"{started.stderr}\n{log}")
    except BaseException:
        server.stop()
        raise
    return server
