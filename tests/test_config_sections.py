"""The settings sections: every setting in exactly one, read from the same environment names."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from dbops.config import SECTIONS, PoolSettings, Settings
from dbops.config import sections as sections_module


def _origin(name: str) -> list[str]:
    return [s.__name__ for s in SECTIONS if name in s.setting_names().values()]


def test_every_setting_is_in_exactly_one_section() -> None:
    placed = {name: _origin(name) for name in Settings.model_fields}
    assert {n: where for n, where in placed.items() if len(where) != 1} == {}
    every = [name for s in SECTIONS for name in s.setting_names().values()]
    assert sorted(every) == sorted(Settings.model_fields)


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.__name__)
def test_a_section_field_has_its_settings_type(section: type[sections_module.Section]) -> None:
    """A section field typed ``int`` over a ``float`` setting would truncate nothing but lie."""
    hints = typing.get_type_hints(section, vars(sections_module))
    for field, source in section.setting_names().items():
        assert source in Settings.model_fields, f"{section.__name__}.{field}: no {source}"
        assert hints[field] == Settings.model_fields[source].annotation, (section, field)


def test_a_section_reads_the_flat_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The names users set are unchanged: prefixed, unprefixed and renamed fields alike."""
    monkeypatch.setenv("DBOPS_POOL_MIN_SIZE", "3")
    monkeypatch.setenv("DBOPS_STATEMENT_TIMEOUT_MS", "1234")
    monkeypatch.setenv("DBOPS_WORKLOAD_RATE", "7.5")
    monkeypatch.setenv("DBOPS_KEYS_ROTATE_BATCH_SIZE", "55")
    monkeypatch.setenv("DBOPS_BACKUP_KEEP_DAILY", "9")
    monkeypatch.setenv("DBOPS_MONITOR_ACCESS_WINDOW_S", "120")
    settings = Settings(_env_file=None)
    assert settings.pool.min_size == 3
    assert settings.pool.statement_timeout_ms == 1234
    assert settings.serve.workload_rate == 7.5
    assert settings.crypto.keys_rotate_batch_size == 55
    assert settings.backup.keep_daily == 9
    assert settings.monitor.access_window_s == 120.0


def test_a_section_follows_a_copy_of_the_settings() -> None:
    """Sections are computed, not cached: a ``model_copy`` never carries a stale one."""
    settings = Settings(_env_file=None, backup_keep_last=2)
    assert settings.backup.keep_last == 2
    copy = settings.model_copy(update={"backup_keep_last": 5})
    assert copy.backup.keep_last == 5
    assert settings.backup.keep_last == 2


def test_a_section_is_frozen() -> None:
    pool = Settings(_env_file=None).pool
    with pytest.raises(dataclasses.FrozenInstanceError):
        pool.max_size = 1  # type: ignore[misc]
    assert dataclasses.replace(pool, max_size=1).max_size == 1
    assert isinstance(pool, PoolSettings)
