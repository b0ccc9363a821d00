"""The admin password hash: stdlib scrypt with a random salt and its parameters in the
string, constant-time verification, strict parsing (a malformed hash fails the settings),
the CLI that prints it, and the failed-login throttle."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest
from pydantic import ValidationError

from server.admin.password import MAX_PASSWORD, BadHash, hash_password, parse_hash, verify_password
from server.admin.routes import LoginThrottle
from server.settings import ServerSettings
from tests.servers import ROOT

PASSWORD = "correct horse battery staple"
# cheap parameters where the cost itself is not under test
FAST = {"n": 2 ** 10, "r": 8, "p": 1}


def test_hash_round_trip_and_format():
    hashed = hash_password(PASSWORD)
    prefix, n, r, p, salt, key = hashed.split("$")
    assert (prefix, n, r, p) == ("scrypt", str(2 ** 15), "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(key)) == 32
    assert PASSWORD not in hashed
    assert verify_password(PASSWORD, hashed)
    assert not verify_password(PASSWORD + " ", hashed)
    assert not verify_password("", hashed)


def test_salt_is_random_and_parameters_come_from_the_string():
    a, b = hash_password(PASSWORD, **FAST), hash_password(PASSWORD, **FAST)
    assert a != b
    assert a.split("$")[1:4] == ["1024", "8", "1"]
    assert verify_password(PASSWORD, a) and verify_password(PASSWORD, b)
    assert verify_password(PASSWORD, parse_hash(a))


def test_over_long_passwords_are_refused_without_hashing():
    hashed = hash_password(PASSWORD, **FAST)
    assert not verify_password("x" * (MAX_PASSWORD + 1), hashed)


@pytest.mark.parametrize("bad", [
    "", "hunter2hunter2", "pbkdf2$1$2$3$c2FsdA==$a2V5",
    "scrypt$32768$8$1$onlyfive",
    "scrypt$x$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",
    "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",   # N not a power of two
    "scrypt$2097152$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",  # N too large
    "scrypt$32768$0$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",
    "scrypt$32768$8$1$not*base64$AAAAAAAAAAAAAAAAAAAAAA==",
    "scrypt$32768$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==",                       # salt too short
])
def test_malformed_hashes_are_refused(bad):
    with pytest.raises(BadHash):
        parse_hash(bad)


def test_settings_check_the_hash_and_name_the_field():
    good = hash_password(PASSWORD, **FAST)
    assert ServerSettings(admin_password_hash=good).admin_password_hash == good
    assert ServerSettings().admin_password_hash is None
    with pytest.raises(ValidationError) as err:
        ServerSettings(admin_password_hash="plain-text-password")
    assert "admin_password_hash" in str(err.value) and "COPLAY_ADMIN_PASSWORD_HASH" in str(err.value)
    with pytest.raises(ValidationError, match="secret_key"):
        ServerSettings(secret_key="short")


def run_cli(stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.admin.password"], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_cli_reads_stdin_and_prints_a_verifiable_hash():
    proc = run_cli(PASSWORD + "\n")
    assert proc.returncode == 0, proc.stderr
    hashed = proc.stdout.strip()
    assert "\n" not in hashed and PASSWORD not in proc.stdout + proc.stderr
    assert verify_password(PASSWORD, hashed)
    assert ServerSettings(admin_password_hash=hashed).admin_password_hash == hashed


def test_cli_refuses_short_passwords():
    proc = run_cli("short\n")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "at least 12 characters" in proc.stderr


def test_throttle_locks_out_with_growing_delays_per_client():
    now = [1000.0]
    throttle = LoginThrottle(free=3, base=1.0, cap=10.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failed("a")
    assert throttle.retry_after("a") == 0          # the free failures cost nothing
    delays = []
    for _ in range(6):
        throttle.failed("a")
        delays.append(throttle.retry_after("a"))
        now[0] += delays[-1]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # doubling, capped
    assert throttle.retry_after("b") == 0              # other clients are not affected
    throttle.failed("a")
    assert throttle.retry_after("a") > 0
    throttle.succeeded("a")
    assert throttle.retry_after("a") == 0
