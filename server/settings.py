"""Server settings: command-line flags, else COPLAY_* environment variables, else defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COPLAY_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    experiments_dir: Path = ROOT / "experiments"
    default_experiment: str | None = None
    database: Path = ROOT / "data" / "coplay.sqlite"
    pyscript_toml: Path = ROOT / "pyscript.toml"
    vendor_dir: Path = ROOT / "vendor"
    # Socket.IO heartbeat: a page that misses pings for interval+timeout is dropped.
    ping_interval: float = Field(10.0, gt=0)
    ping_timeout: float = Field(20.0, gt=0)
    max_payload_bytes: int = Field(1_000_000, gt=1000)
    # On SIGTERM/SIGINT: seconds to drain (tell pages, save open rooms, finish handlers) and exit.
    shutdown_grace: float = Field(5.0, ge=1.0, le=600.0)
    # Bearer token for /admin/* (data downloads). Unset: admin routes do not exist.
    # Give it through the environment (COPLAY_ADMIN_TOKEN), never in a committed file.
    admin_token: str | None = Field(None, min_length=16)
