"""API keys for the data server: stored hashed, checked in constant time.

A key reads ``dm_<id>_<secret>``: the id (public, 16 hex digits) finds the record, the
secret (256 random bits) is checked against ``HMAC-SHA256(salt, secret)`` with
:func:`hmac.compare_digest`. Secrets this long cannot be guessed, so a slow password hash
(scrypt) would only slow every request down. The file (JSON, mode 0600) lives under the
data root, which git ignores, and is re-read when it changes, so keys added or revoked
while the server runs take effect on the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.errors import InvalidInputError

__all__ = ["KEY_HEADER", "ApiKey", "KeyStore", "default_keys_file"]

KEY_HEADER = "X-API-Key"
_PREFIX = "dm"
_KEY = re.compile(r"^dm_([0-9a-f]{16})_([A-Za-z0-9_\-]{20,100})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: compared against when no record matches, so a miss costs what a hit costs
_DUMMY_SALT = secrets.token_bytes(16)


def default_keys_file(root: Path) -> Path:
    return root / "server" / "api_keys.json"


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    trusted: bool
    created_at: str
    salt: str
    hash: str

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "trusted": self.trusted,
            "created_at": self.created_at,
        }


class KeyStore:
    """The keys file: ``add``/``revoke``/``list`` for the CLI, ``verify`` per request."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._keys: dict[str, ApiKey] = {}

    # -- reading -----------------------------------------------------------------------
    def _load(self) -> dict[str, ApiKey]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            with self._lock:
                self._stamp, self._keys = None, {}
            return {}
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp == self._stamp:
                return self._keys
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
                keys = {k["id"]: ApiKey(**k) for k in doc.get("keys", [])}
            except (OSError, ValueError, TypeError, KeyError) as exc:
                raise InvalidInputError(
                    f"cannot read the API keys file {self.path}: {exc}; "
                    "fix or remove it and add keys again with `duckmarket serve --add-key NAME`"
                ) from None
            self._stamp, self._keys = stamp, keys
            return keys

    def list(self) -> list[ApiKey]:
        return sorted(self._load().values(), key=lambda k: k.name)

    def verify(self, presented: str | None) -> ApiKey | None:
        """The key record for ``presented``, or None; as slow for a miss as for a hit."""
        keys = self._load()
        m = _KEY.match(presented or "")
        record = keys.get(m.group(1)) if m else None
        secret = m.group(2) if m else "x" * 43
        salt = bytes.fromhex(record.salt) if record else _DUMMY_SALT
        expected = bytes.fromhex(record.hash) if record else _digest(_DUMMY_SALT, "y")
        ok = hmac.compare_digest(_digest(salt, secret), expected)
        return record if ok and record is not None else None

    # -- writing -----------------------------------------------------------------------
    def _save(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"version": 1, "keys": [asdict(k) for k in keys]}, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def add(self, name: str, *, trusted: bool = False) -> str:
        """Create a key named ``name``; returns the key itself, which is never stored."""
        if not _NAME.match(name or ""):
            raise InvalidInputError(
                f"invalid key name {name!r}: use up to 64 letters, digits, '.', '_' or '-'"
            )
        keys = self.list()
        if any(k.name == name for k in keys):
            raise InvalidInputError(
                f"a key named {name!r} exists already; revoke it first with --revoke-key {name}"
            )
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        record = ApiKey(
            id=key_id,
            name=name,
            trusted=trusted,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            salt=salt.hex(),
            hash=_digest(salt, secret).hex(),
        )
        self._save([*keys, record])
        return f"{_PREFIX}_{key_id}_{secret}"

    def revoke(self, name: str) -> bool:
        keys = self.list()
        kept = [k for k in keys if k.name != name]
        if len(kept) == len(keys):
            return False
        self._save(kept)
        return True
