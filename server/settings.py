"""Server settings: command-line flags, else COPLAY_* environment variables, else defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.admin.password import BadHash, parse_hash

ROOT = Path(__file__).resolve().parent.parent


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPLAY_", extra="forbid")

    host: str = "127.0.0.1"
    # The ASGI server (server/transport/serving.py): granian (Rust I/O threads; the default) or
    # hypercorn (pure Python) where granian's wheels do not install.
    asgi_server: Literal["granian", "hypercorn"] = "granian"
    port: int = Field(8000, ge=0, le=65535)
    experiments_dir: Path = ROOT / "experiments"
    default_experiment: str | None = None
    # A SQLite file, or a Postgres URL: postgresql://user:password@host:5432/dbname
    database: Path | str = ROOT / "data" / "coplay.sqlite"

    @field_validator("database")
    @classmethod
    def _path_or_url(cls, value: Path | str) -> Path | str:
        return value if isinstance(value, str) and "://" in value else Path(value)

    # Several server processes sharing rooms: redis://host:6379/0 (python-socketio's Redis
    # manager carries emits between processes; server/multiplayer/cluster.py routes room events)
    redis_url: str | None = Field(None, pattern=r"^rediss?://")
    pyscript_toml: Path = ROOT / "pyscript.toml"
    vendor_dir: Path = ROOT / "vendor"
    # Socket.IO heartbeat: a page that misses pings for interval+timeout is dropped.
    ping_interval: float = Field(10.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    max_payload_bytes: int = Field(1_000_000, gt=1000)
    # Hostile input (server/transport/limits.py): events per second per connection, with a burst;
    # more are refused ("rate limited"). A connection with more than abuse_limit refused
    # events within abuse_window seconds is disconnected.
    rate_limit: float = Field(120.0, gt=0)
    rate_burst: int = Field(240, ge=1)
    abuse_limit: int = Field(600, ge=1)
    abuse_window: float = Field(10.0, gt=0)
    # Concurrent Socket.IO connections per client address; more are refused at connect.
    max_connections_per_ip: int = Field(200, ge=1)
    # Multiplayer seats (waiting or playing) per client address; more joins are refused.
    max_rooms_per_ip: int = Field(100, ge=1)
    # Take the client address from the last X-Forwarded-For entry: only behind one
    # reverse proxy that sets it (otherwise any client could claim any address).
    trust_forwarded_for: bool = False
    # Worker processes for the end-of-room CPython replays (server/multiplayer/replay_pool.py), so
    # rooms finishing together do not stall the relay. 0: on a thread of the server process.
    replay_workers: int = Field(2, ge=0, le=64)
    # Where the browser's pure-Python wheels are unpacked for the replay (one folder per
    # sha256). Unset: wheels/ next to the SQLite database, or a fresh temp folder (Postgres).
    wheel_cache_dir: Path | None = None
    # On SIGTERM/SIGINT: seconds to drain (tell pages, save open rooms, finish handlers) and exit.
    shutdown_grace: float = Field(5.0, ge=1.0, le=600.0)
    # Bearer token for /admin/* (data downloads). Unset: admin routes do not exist.
    # Give it through the environment (COPLAY_ADMIN_TOKEN), never in a committed file.
    admin_token: str | None = Field(None, min_length=16)
    # scrypt hash of the admin password for the /admin/ login page, from
    # `python -m server.admin.password` (COPLAY_ADMIN_PASSWORD_HASH). Unset: no login page.
    admin_password_hash: str | None = None
    # Signs the admin session cookie (COPLAY_SECRET_KEY). Unset: a random key per process,
    # so admin logins do not survive a restart.
    secret_key: str | None = Field(None, min_length=32)
    # the live monitor (/admin/monitor) lists a participant whose RTT is above this as a problem
    monitor_rtt_ms: float = Field(200.0, gt=0)

    def wheel_cache(self) -> Path | None:
        """The wheel cache folder (None: a temporary one, made by the replay pool)."""
        if self.wheel_cache_dir is not None:
            return self.wheel_cache_dir
        return None if isinstance(self.database, str) else self.database.parent / "wheels"

    @field_validator("admin_password_hash")
    @classmethod
    def _scrypt_hash(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parse_hash(value)
        except BadHash as exc:
            raise ValueError(f"COPLAY_ADMIN_PASSWORD_HASH is not a valid password hash: {exc}") from None
        return value.strip()
