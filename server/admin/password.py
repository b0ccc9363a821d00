"""The admin password, stored only as a scrypt hash (stdlib ``hashlib.scrypt``, random salt,
cost parameters in the string: ``scrypt$N$r$p$<salt base64>$<key base64>``).

    python -m server.admin.password            # asks twice (or reads one line from stdin)
    export COPLAY_ADMIN_PASSWORD_HASH='scrypt$32768$8$1$...'   # single quotes: it holds '$'
"""

from __future__ import annotations

import base64
import binascii
import getpass
import hashlib
import hmac
import os
import sys
from dataclasses import dataclass

PREFIX = "scrypt"
# 2**15 * 8 * 128 bytes = 32 MiB of memory and ~0.1 s per hash: OWASP's scrypt baseline is lower
N, R, P = 2 ** 15, 8, 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
# bounds on what a configured hash may ask for, so a typo cannot make every login take minutes
MAX_N, MAX_R, MAX_P = 2 ** 20, 32, 16


class BadHash(ValueError):
    """The string is not a hash this module made; the message says what is wrong."""


@dataclass(frozen=True)
class ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    def __str__(self) -> str:
        return "$".join([PREFIX, str(self.n), str(self.r), str(self.p), _b64(self.salt), _b64(self.key)])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, n: int, r: int, p: int, salt: bytes, length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length,
                          maxmem=128 * n * r * p + 1024 * 1024)


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P) -> str:
    if not password:
        raise ValueError("empty password")
    salt = os.urandom(SALT_BYTES)
    return str(ScryptHash(n, r, p, salt, _derive(password, n, r, p, salt, KEY_BYTES)))


def parse_hash(text: str) -> ScryptHash:
    parts = text.strip().split("$")
    if len(parts) != 6 or parts[0] != PREFIX:
        raise BadHash("expected 'scrypt$N$r$p$salt$key' as printed by `python -m server.admin.password` "
                      f"(got {len(parts)} '$'-separated part(s); quote the value with single quotes "
                      "in a shell, $$ in a compose file)")
    try:
        n, r, p = (int(v) for v in parts[1:4])
    except ValueError:
        raise BadHash("N, r and p must be whole numbers") from None
    if n < 2 or n & (n - 1) or n > MAX_N:
        raise BadHash(f"N must be a power of two between 2 and {MAX_N}, not {n}")
    if not (1 <= r <= MAX_R and 1 <= p <= MAX_P):
        raise BadHash(f"r must be in 1..{MAX_R} and p in 1..{MAX_P}")
    try:
        salt, key = (base64.b64decode(v, validate=True) for v in parts[4:])
    except (binascii.Error, ValueError):
        raise BadHash("salt and key must be base64") from None
    if len(salt) < 16 or len(key) < 16:
        raise BadHash("salt and key must each be at least 16 bytes")
    return ScryptHash(n, r, p, salt, key)


def verify_password(password: str, hashed: str | ScryptHash) -> bool:
    """Constant-time check of `password` against a hash; False for over-long input."""
    h = parse_hash(hashed) if isinstance(hashed, str) else hashed
    if not password or len(password) > MAX_PASSWORD:
        return False
    return hmac.compare_digest(_derive(password, h.n, h.r, h.p, h.salt, len(h.key)), h.key)


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Admin password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("coplay: the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Print the scrypt hash of an admin password for COPLAY_ADMIN_PASSWORD_HASH. "
                    "Asks for it on a terminal, else reads one line from standard input.")
    parser.parse_args(argv)
    password = _read_password()
    if len(password) < MIN_PASSWORD:
        print(f"coplay: the admin password needs at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    if len(password) > MAX_PASSWORD:
        print(f"coplay: the admin password may have at most {MAX_PASSWORD} characters", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
