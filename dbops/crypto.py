"""Field encryption: versioned AES-256-GCM keys, blind indexes, and where the keys come from.

The low layer the services use for sensitive columns (today ``users.phone``). A value is
encrypted in the application, so neither it nor a key ever reaches SQL text, a server log or
``pg_stat_statements``: the database only sees ciphertext and an HMAC (bound parameters).

Stored format (``bytea``)::

    version (2 bytes, big-endian) | nonce (12 bytes) | AES-GCM ciphertext + 16-byte tag

The associated data binds the ciphertext to its place, ``table|column|row_id|version``, so a
ciphertext copied to another row or column (or relabelled with another version) fails to
decrypt instead of showing the wrong person's value. Equality lookups go through a blind index:
HMAC-SHA256 of the normalized value under a separate key, domain-separated by table and column.

Keys come from settings (``DBOPS_ENCRYPTION_KEYS`` / ``_FILE``, ``DBOPS_BLIND_INDEX_KEY`` /
``_FILE``). With no keys configured and no ``DATABASE_URL`` (the embedded dev default), keys are
generated once into ``<home>/keys/`` (mode 0600) and a warning says so; with ``DATABASE_URL``
set, the field cannot be read or written (:class:`~dbops.errors.ConfigError`), never silently
stored in plain text.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dbops.errors import ConfigError, DecryptionError, InvalidInput

if TYPE_CHECKING:
    import uuid

    from dbops.config import Settings

__all__ = [
    "BLIND_INDEX_FILE",
    "ENCRYPTION_KEYS_FILE",
    "KEY_BYTES",
    "PHONE_RULE",
    "KeySource",
    "Keyring",
    "embedded_key_dir",
    "format_keys",
    "generate_key",
    "load_keyring",
    "normalize_phone",
    "parse_keys",
    "write_key_file",
]

_log = logging.getLogger(__name__)

#: AES-256: 32-byte keys. The blind index key has the same length (HMAC-SHA256 block is 64).
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION_BYTES = 2
MAX_VERSION = 32_767  # stored in a smallint column
#: Files of the generated embedded-default keys, under ``<home>/keys/``.
ENCRYPTION_KEYS_FILE = "encryption.keys"
BLIND_INDEX_FILE = "blind_index.key"

_KEY_ITEM = re.compile(r"^v?(?P<version>\d+)\s*:\s*(?P<key>\S+)$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")

#: E.164: a plus sign, a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: What people type between digits: spaces, dashes, dots, parentheses, slashes.
_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")
PHONE_RULE = "must be an international phone number like +14155550123 (7 to 15 digits after +)"


def normalize_phone(value: str) -> str:
    """The E.164 form of ``value`` (``+`` and digits); InvalidInput(field="phone") otherwise.

    Spaces, dashes, dots, parentheses and slashes are dropped and a leading ``00`` becomes
    ``+``. A number without a country code is refused (which country is unknowable here). The
    message never echoes the value.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"phone: {PHONE_RULE}", field="phone")
    compact = _PHONE_SEPARATORS.sub("", value)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.match(compact):
        raise InvalidInput(f"phone: {PHONE_RULE}", field="phone")
    return compact


KeySource = Literal["settings", "file", "embedded"]


@dataclass(frozen=True, repr=False)
class _Secret:
    """Key bytes that never show in ``repr``/``str`` (logs, tracebacks with locals)."""

    value: bytes

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class Keyring:
    """Versioned AES-256-GCM keys (the highest version encrypts) and the blind index key.

    Args:
        keys: version -> 32-byte key; the highest version is the current one.
        blind_index_key: the HMAC-SHA256 key of blind indexes (32 bytes or more).
        source: where the keys came from, for ``dbops keys status``.

    Key bytes never appear in ``repr``, ``str``, logs or error messages.
    """

    __slots__ = ("_aead", "_blind", "_keys", "source")

    def __init__(
        self,
        keys: Mapping[int, bytes],
        blind_index_key: bytes,
        *,
        source: KeySource = "settings",
    ) -> None:
        if not keys:
            raise ConfigError("the keyring needs at least one encryption key")
        for version, key in keys.items():
            if not 1 <= version <= MAX_VERSION:
                raise ConfigError(f"encryption key version {version} is outside 1..{MAX_VERSION}")
            if len(key) != KEY_BYTES:
                raise ConfigError(
                    f"encryption key v{version} must be {KEY_BYTES} bytes (AES-256), got {len(key)}"
                )
        if len(blind_index_key) < KEY_BYTES:
            raise ConfigError(f"the blind index key must be at least {KEY_BYTES} bytes")
        self._keys = {v: _Secret(bytes(k)) for v, k in sorted(keys.items())}
        self._aead = {v: AESGCM(k.value) for v, k in self._keys.items()}
        self._blind = _Secret(bytes(blind_index_key))
        self.source: KeySource = source

    def __repr__(self) -> str:
        return f"Keyring(versions={self.versions}, current={self.current}, source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Keyring cannot be pickled (it would copy the keys)")

    @property
    def versions(self) -> tuple[int, ...]:
        """Every key version this keyring can decrypt, ascending."""
        return tuple(self._keys)

    @property
    def current(self) -> int:
        """The version new values are encrypted with (the highest)."""
        return max(self._keys)

    # -- encryption -------------------------------------------------------------------------

    def encrypt(self, value: str, *, table: str, column: str, row_id: uuid.UUID | str) -> bytes:
        """``value`` encrypted with the current key, bound to ``table.column`` of ``row_id``."""
        version = self.current
        nonce = os.urandom(NONCE_BYTES)
        aad = _aad(table, column, row_id, version)
        sealed = self._aead[version].encrypt(nonce, value.encode("utf-8"), aad)
        return version.to_bytes(VERSION_BYTES, "big") + nonce + sealed

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID | str) -> str:
        """The plain value of ``blob``, stored in ``table.column`` of ``row_id``.

        Raises:
            DecryptionError: unknown key version, a blob too short, a tampered blob, or a
                ciphertext that belongs to another row, column or table (the message names the
                place, never the value or a key).
        """
        version = self.version_of(blob, table=table, column=column, row_id=row_id)
        aead = self._aead.get(version)
        place = f"{table}.{column} of row {row_id}"
        if aead is None:
            raise DecryptionError(
                f"cannot decrypt {place}: key version {version} is not in the keyring "
                f"(versions {', '.join(map(str, self.versions))}); add it back to "
                "DBOPS_ENCRYPTION_KEYS"
            )
        nonce = bytes(blob[VERSION_BYTES : VERSION_BYTES + NONCE_BYTES])
        try:
            plain = aead.decrypt(
                nonce,
                bytes(blob[VERSION_BYTES + NONCE_BYTES :]),
                _aad(table, column, row_id, version),
            )
        except InvalidTag:
            raise DecryptionError(
                f"cannot decrypt {place}: the ciphertext was altered, or was copied from "
                "another row or column"
            ) from None
        return plain.decode("utf-8")

    def version_of(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID | str) -> int:
        """The key version written at the start of ``blob``; DecryptionError if malformed."""
        if len(blob) < VERSION_BYTES + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(
                f"cannot decrypt {table}.{column} of row {row_id}: the value is too short to "
                "be a ciphertext"
            )
        return int.from_bytes(blob[:VERSION_BYTES], "big")

    # -- blind index ------------------------------------------------------------------------

    def blind_index(self, normalized: str, *, table: str, column: str) -> bytes:
        """HMAC-SHA256 of ``normalized`` for equality lookups of ``table.column`` (32 bytes).

        The table and column are part of the message, so equal values in two columns do not
        give equal indexes. Normalize first (:func:`normalize_phone`): the index matches only
        byte-equal input.
        """
        message = _place(table, column).encode() + normalized.encode("utf-8")
        return hmac.digest(self._blind.value, message, "sha256")


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


@lru_cache(maxsize=256)
def _place(table: str, column: str) -> str:
    """``table|column|`` after checking both are plain identifiers (cached: a hot path)."""
    return f"{_ident(table)}|{_ident(column)}|"


def _aad(table: str, column: str, row_id: uuid.UUID | str, version: int) -> bytes:
    return f"{_place(table, column)}{row_id}|{version}".encode()


# -- loading ------------------------------------------------------------------------------------


def generate_key() -> bytes:
    """A fresh random 32-byte key."""
    return secrets.token_bytes(KEY_BYTES)


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what} is not valid base64") from None


def parse_keys(text: str, *, what: str = "DBOPS_ENCRYPTION_KEYS") -> dict[int, bytes]:
    """Versioned keys from ``v1:<base64>,v2:<base64>`` (commas or new lines) or JSON.

    JSON is an object ``{"1": "<base64>", "v2": "<base64>"}``. Errors name ``what`` and the
    version, never a key.
    """
    text = text.strip()
    if not text:
        raise ConfigError(f"{what} is empty")
    items: list[tuple[str, str]]
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ConfigError(f"{what} is not valid JSON") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f'{what} must be a JSON object {{"1": "<base64 key>", ...}}')
        items = [(str(k).removeprefix("v"), v) for k, v in data.items()]
    else:
        items = []
        for raw in re.split(r"[,\n]", text):
            item = raw.strip()
            if not item or item.startswith("#"):
                continue
            match = _KEY_ITEM.match(item)
            if match is None:
                raise ConfigError(f"{what}: each key must be written v<version>:<base64 key>")
            items.append((match["version"], match["key"]))
    keys: dict[int, bytes] = {}
    for raw_version, encoded in items:
        if not raw_version.isdigit():
            raise ConfigError(f"{what}: key versions must be positive integers")
        version = int(raw_version)
        if version in keys:
            raise ConfigError(f"{what}: key version {version} appears twice")
        keys[version] = _b64(encoded, f"{what} key v{version}")
    return keys


def _read_secret_file(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    if os.name == "posix" and path.stat().st_mode & 0o077:
        _log.warning("%s file %s is readable by other users: chmod 600 it", what, path)
    return text


def write_key_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (its directory 0700 if new)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def format_keys(keys: Mapping[int, bytes]) -> str:
    """The key file form of ``keys``: one ``v<version>:<base64>`` per line."""
    return "".join(f"v{v}:{base64.b64encode(k).decode()}\n" for v, k in sorted(keys.items()))


NO_KEYS = (
    "users.phone is encrypted and no keys are configured: set DBOPS_ENCRYPTION_KEYS (or "
    "DBOPS_ENCRYPTION_KEYS_FILE) and DBOPS_BLIND_INDEX_KEY (or DBOPS_BLIND_INDEX_KEY_FILE); "
    "`dbops keys generate` writes a key file"
)


def embedded_key_dir(settings: Settings) -> Path:
    """Where the embedded default keeps generated keys: ``<home>/keys``."""
    return settings.home / "keys"


def load_keyring(settings: Settings) -> Keyring:
    """The keyring ``settings`` describe (see the module docstring for the sources).

    Raises:
        ConfigError: keys missing with ``DATABASE_URL`` set, both a value and a file given for
            the same key, or a key that does not parse. Never quotes a key.
    """
    enc_value, enc_file = settings.crypto.encryption_keys, settings.crypto.encryption_keys_file
    blind_value, blind_file = settings.crypto.blind_index_key, settings.crypto.blind_index_key_file
    if enc_value is not None and enc_file is not None:
        raise ConfigError("set DBOPS_ENCRYPTION_KEYS or DBOPS_ENCRYPTION_KEYS_FILE, not both")
    if blind_value is not None and blind_file is not None:
        raise ConfigError("set DBOPS_BLIND_INDEX_KEY or DBOPS_BLIND_INDEX_KEY_FILE, not both")
    configured = (enc_value, enc_file, blind_value, blind_file)
    if all(item is None for item in configured):
        if not settings.embedded:
            raise ConfigError(NO_KEYS)
        return _embedded_keyring(embedded_key_dir(settings))
    if (enc_value is None and enc_file is None) or (blind_value is None and blind_file is None):
        raise ConfigError(NO_KEYS)
    if enc_value is not None:
        keys = parse_keys(enc_value.get_secret_value())
        source: KeySource = "settings"
    else:
        assert enc_file is not None
        keys = parse_keys(
            _read_secret_file(enc_file, "DBOPS_ENCRYPTION_KEYS_FILE"),
            what="DBOPS_ENCRYPTION_KEYS_FILE",
        )
        source = "file"
    if blind_value is not None:
        blind = _b64(blind_value.get_secret_value(), "DBOPS_BLIND_INDEX_KEY")
    else:
        assert blind_file is not None
        blind = _b64(
            _read_secret_file(blind_file, "DBOPS_BLIND_INDEX_KEY_FILE"),
            "DBOPS_BLIND_INDEX_KEY_FILE",
        )
    return Keyring(keys, blind, source=source)


def _embedded_keyring(directory: Path) -> Keyring:
    """The embedded default's keys in ``directory``, generated on first use (0600)."""
    enc_path, blind_path = directory / ENCRYPTION_KEYS_FILE, directory / BLIND_INDEX_FILE
    generated = False
    if not enc_path.exists():
        write_key_file(enc_path, format_keys({1: generate_key()}))
        generated = True
    if not blind_path.exists():
        write_key_file(blind_path, base64.b64encode(generate_key()).decode() + "\n")
        generated = True
    if generated:
        _log.warning(
            "no encryption keys configured: generated dev keys in %s (mode 0600); "
            "back them up, losing them loses every encrypted value",
            directory,
        )
    keys = parse_keys(_read_secret_file(enc_path, "encryption keys"), what=str(enc_path))
    blind = _b64(_read_secret_file(blind_path, "blind index key"), str(blind_path))
    return Keyring(keys, blind, source="embedded")
