"""dbops.crypto without a database: round trip, binding to the row, tampering, key loading."""

from __future__ import annotations

import base64
import json
import logging
import pickle
import stat
import uuid
from pathlib import Path

import pytest

from dbops.config import Settings
from dbops.crypto import (
    BLIND_INDEX_FILE,
    ENCRYPTION_KEYS_FILE,
    Keyring,
    format_keys,
    generate_key,
    load_keyring,
    normalize_phone,
    parse_keys,
)
from dbops.errors import ConfigError, DecryptionError, InvalidInput
from tests.fixtures.db import make_settings

K1, K2, BLIND = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
PHONE = "+14155550123"
ROW = uuid.UUID("0190b5e4-0000-7000-8000-000000000001")
OTHER_ROW = uuid.UUID("0190b5e4-0000-7000-8000-000000000002")
AT = {"table": "users", "column": "phone"}


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring({1: K1, 2: K2}, BLIND)


def test_round_trip_with_the_current_key(keyring: Keyring) -> None:
    blob = keyring.encrypt(PHONE, row_id=ROW, **AT)
    assert keyring.current == 2
    assert blob[:2] == (2).to_bytes(2, "big")
    assert len(blob) == 2 + 12 + len(PHONE) + 16
    assert PHONE.encode() not in blob
    assert keyring.decrypt(blob, row_id=ROW, **AT) == PHONE
    # A fresh nonce each time: equal values do not give equal ciphertexts.
    assert keyring.encrypt(PHONE, row_id=ROW, **AT) != blob


def test_an_old_version_still_decrypts(keyring: Keyring) -> None:
    old = Keyring({1: K1}, BLIND).encrypt(PHONE, row_id=ROW, **AT)
    assert keyring.version_of(old, row_id=ROW, **AT) == 1
    assert keyring.decrypt(old, row_id=ROW, **AT) == PHONE


@pytest.mark.parametrize(
    "place",
    [
        {"table": "users", "column": "phone", "row_id": OTHER_ROW},  # copied to another row
        {"table": "users", "column": "recovery_email", "row_id": ROW},  # to another column
        {"table": "teams", "column": "phone", "row_id": ROW},  # to another table
    ],
)
def test_a_ciphertext_out_of_its_place_does_not_decrypt(keyring: Keyring, place: dict) -> None:
    blob = keyring.encrypt(PHONE, row_id=ROW, **AT)
    with pytest.raises(DecryptionError, match="copied from another row or column") as caught:
        keyring.decrypt(blob, **place)
    assert PHONE not in str(caught.value)


@pytest.mark.parametrize("position", [3, 2 + 12, -1])  # nonce, ciphertext, tag
def test_a_tampered_ciphertext_fails(keyring: Keyring, position: int) -> None:
    blob = bytearray(keyring.encrypt(PHONE, row_id=ROW, **AT))
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError, match="altered"):
        keyring.decrypt(bytes(blob), row_id=ROW, **AT)


def test_a_relabelled_version_fails(keyring: Keyring) -> None:
    """Version 2's ciphertext presented as version 1: other key and other AAD, no decryption."""
    blob = keyring.encrypt(PHONE, row_id=ROW, **AT)
    with pytest.raises(DecryptionError):
        keyring.decrypt((1).to_bytes(2, "big") + blob[2:], row_id=ROW, **AT)


def test_unknown_version_and_short_blobs_are_clear_errors(keyring: Keyring) -> None:
    blob = Keyring({7: K1}, BLIND).encrypt(PHONE, row_id=ROW, **AT)
    with pytest.raises(DecryptionError, match="key version 7 is not in the keyring"):
        keyring.decrypt(blob, row_id=ROW, **AT)
    with pytest.raises(DecryptionError, match="too short"):
        keyring.decrypt(b"\x00\x01abc", row_id=ROW, **AT)


def test_keys_never_show_in_repr_str_or_pickle(keyring: Keyring) -> None:
    for text in (repr(keyring), str(keyring), repr(keyring._keys), repr(keyring._blind)):
        for key in (K1, K2, BLIND):
            assert repr(key) not in text
            assert b64(key) not in text
            assert key.hex() not in text
    assert repr(keyring) == "Keyring(versions=(1, 2), current=2, source='settings')"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(keyring)


def test_blind_index_is_deterministic_and_separated_by_column(keyring: Keyring) -> None:
    index = keyring.blind_index(PHONE, **AT)
    assert len(index) == 32
    assert index == Keyring({9: K2}, BLIND).blind_index(PHONE, **AT)  # not tied to the AES keys
    assert index != keyring.blind_index("+14155550124", **AT)
    assert index != keyring.blind_index(PHONE, table="users", column="fax")
    assert index != Keyring({1: K1}, b"\x04" * 32).blind_index(PHONE, **AT)


def test_bad_keys_are_refused_without_quoting_them() -> None:
    with pytest.raises(ConfigError, match="must be 32 bytes"):
        Keyring({1: b"short"}, BLIND)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Keyring({1: K1}, b"short")
    with pytest.raises(ConfigError, match="outside"):
        Keyring({0: K1}, BLIND)
    with pytest.raises(ConfigError, match="at least one"):
        Keyring({}, BLIND)


# -- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155550123", "+14155550123"),
        (" +1 (415) 555-0123 ", "+14155550123"),
        ("+44 20.7946.0958", "+442079460958"),
        ("0049 30 1234567", "+49301234567"),
    ],
)
def test_phone_normalization(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["6505550199", "+0123456789", "+1 415 CALL NOW", "+1234", "+1234567890123456", ""]
)
def test_bad_phones_are_invalid_input_without_the_value(raw: str) -> None:
    with pytest.raises(InvalidInput, match="international phone number") as caught:
        normalize_phone(raw)
    assert caught.value.field == "phone"
    if raw:
        assert raw not in str(caught.value)


# -- key loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"v1:{b64(K1)},v2:{b64(K2)}",
        f"1:{b64(K1)}\n# comment\nv2 : {b64(K2)}\n",
        json.dumps({"1": b64(K1), "v2": b64(K2)}),
    ],
)
def test_parse_keys_formats(text: str) -> None:
    assert parse_keys(text) == {1: K1, 2: K2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        (f"v1={b64(K1)}", "v<version>:<base64 key>"),
        ("v1:not*base64", "key v1 is not valid base64"),
        (f"v1:{b64(K1)},v1:{b64(K2)}", "appears twice"),
        ("{not json", "not valid JSON"),
        ('{"x": "AAAA"}', "positive integers"),
    ],
)
def test_parse_keys_errors_name_the_problem_not_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_keys(text)
    assert b64(K1) not in str(caught.value)


def test_keys_from_settings_values_and_files(tmp_path: Path) -> None:
    settings = make_settings(
        "postgresql://u@h/db",
        encryption_keys=f"v1:{b64(K1)},v3:{b64(K2)}",
        blind_index_key=b64(BLIND),
    )
    keyring = load_keyring(settings)
    assert (keyring.versions, keyring.current, keyring.source) == ((1, 3), 3, "settings")
    assert b64(K1) not in repr(settings)  # SecretStr

    keys_file, blind_file = tmp_path / "enc.keys", tmp_path / "blind.key"
    keys_file.write_text(format_keys({1: K1, 2: K2}))
    blind_file.write_text(b64(BLIND) + "\n")
    from_files = load_keyring(
        make_settings(
            "postgresql://u@h/db", encryption_keys_file=keys_file, blind_index_key_file=blind_file
        )
    )
    assert (from_files.versions, from_files.source) == ((1, 2), "file")
    blob = from_files.encrypt(PHONE, row_id=ROW, **AT)
    assert Keyring({2: K2}, BLIND).decrypt(blob, row_id=ROW, **AT) == PHONE


def test_with_database_url_and_no_keys_it_is_a_config_error(tmp_path: Path) -> None:
    settings = make_settings("postgresql://u@h/db", home=tmp_path)
    with pytest.raises(ConfigError, match="no keys are configured"):
        load_keyring(settings)
    assert not (tmp_path / "keys").exists()  # nothing generated for a real database
    half = make_settings("postgresql://u@h/db", encryption_keys=f"v1:{b64(K1)}")
    with pytest.raises(ConfigError, match="DBOPS_BLIND_INDEX_KEY"):
        load_keyring(half)
    both = make_settings(
        "postgresql://u@h/db",
        encryption_keys=f"v1:{b64(K1)}",
        encryption_keys_file=tmp_path / "x",
        blind_index_key=b64(BLIND),
    )
    with pytest.raises(ConfigError, match="not both"):
        load_keyring(both)


def test_embedded_default_generates_keys_once_with_mode_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, home=tmp_path)
    assert settings.embedded
    with caplog.at_level(logging.WARNING, logger="dbops.crypto"):
        first = load_keyring(settings)
    assert "generated dev keys" in caplog.text
    for name in (ENCRYPTION_KEYS_FILE, BLIND_INDEX_FILE):
        path = tmp_path / "keys" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dbops.crypto"):
        second = load_keyring(settings)
    assert caplog.text == ""  # reused, not generated again
    blob = first.encrypt(PHONE, row_id=ROW, **AT)
    assert second.decrypt(blob, row_id=ROW, **AT) == PHONE
    assert first.source == second.source == "embedded"


def test_generated_keys_are_random() -> None:
    assert generate_key() != generate_key()
    assert len(generate_key()) == 32
