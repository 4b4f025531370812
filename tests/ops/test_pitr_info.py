"""``pgbackrest info --output=json`` read into a PitrInfo, from a hand-written document.

The live tests (test_pitr.py) see one archive and a few backups; this document has what a
repository gains with time (a second archive range after a ``stanza-upgrade``, backups listed
out of order, an incremental), and the expected values are read off the document by hand.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbops.errors import PitrError
from dbops.ops.pitr import STANZA
from dbops.ops.pitr._layout import TAIL_LINES, log_tail
from dbops.ops.pitr.backups import _parse_info

INFO = [
    {"name": "other", "archive": [{"min": "X", "max": "Y"}], "backup": []},
    {
        "name": STANZA,
        "status": {"code": 0, "message": "ok"},
        "archive": [
            {"id": "15-1", "min": "000000010000000000000003", "max": "000000010000000000000009"},
            {"id": "15-2", "min": None, "max": None},
            {"id": "15-3", "min": "000000020000000000000001", "max": "00000002000000000000000C"},
        ],
        "backup": [
            {
                "label": "20261126-020000F_20261126-030000I",
                "type": "incr",
                "timestamp": {"start": 1_795_662_000, "stop": 1_795_662_030},
                "info": {"delta": 4_096, "size": 9_000_000, "repository": {"delta": 512}},
                "archive": {
                    "start": "000000010000000000000007",
                    "stop": "000000010000000000000007",
                },
                "prior": "20261126-020000F",
            },
            {
                "label": "20261126-020000F",
                "type": "full",
                "timestamp": {"start": 1_795_658_400, "stop": 1_795_658_460},
                "info": {"size": 8_000_000, "repository": {"size": 1_000_000}},
                "archive": {
                    "start": "000000010000000000000003",
                    "stop": "000000010000000000000004",
                },
                "prior": None,
            },
        ],
    },
]


def test_info_reads_the_whole_archived_range_and_orders_the_backups() -> None:
    info = _parse_info(json.dumps(INFO), Path("/repo"))
    assert info.status == "ok"
    # the first range's start, the last range's end; the empty range in between is skipped
    assert info.wal_min == "000000010000000000000003"
    assert info.wal_max == "00000002000000000000000C"
    assert [b.label for b in info.backups] == [
        "20261126-020000F",
        "20261126-020000F_20261126-030000I",
    ]
    full, incr = info.backups
    assert full.started_at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    assert full.finished_at == datetime(2026, 11, 26, 2, 1, tzinfo=UTC)
    assert (full.size_bytes, full.repo_size_bytes) == (8_000_000, 1_000_000)
    assert (incr.size_bytes, incr.repo_size_bytes) == (4_096, 512)
    assert (incr.prior, full.prior) == ("20261126-020000F", None)
    assert (full.wal_start, full.wal_stop) == (
        "000000010000000000000003",
        "000000010000000000000004",
    )


def test_a_backup_without_sizes_counts_zero_bytes() -> None:
    """A backup whose info pgBackRest left empty (or null): no size, never a made-up one."""
    bare = json.loads(json.dumps(INFO))
    bare[1]["backup"][1]["info"] = {"size": None, "repository": {}}
    bare[1]["backup"][0]["info"] = None
    full, incr = _parse_info(json.dumps(bare), Path("/repo")).backups
    assert (full.size_bytes, full.repo_size_bytes) == (0, 0)
    assert (incr.size_bytes, incr.repo_size_bytes) == (0, 0)


def test_a_repository_without_archives_has_no_range() -> None:
    empty = [{"name": STANZA, "status": {"message": "no valid backups"}, "archive": []}]
    info = _parse_info(json.dumps(empty), Path("/repo"))
    assert (info.wal_min, info.wal_max, info.backups) == (None, None, ())
    assert info.status == "no valid backups"


@pytest.mark.parametrize("output", ["", "[]", "{}", '[{"name": "other"}]', "not json"])
def test_unreadable_info_is_one_clear_error(output: str) -> None:
    with pytest.raises(PitrError, match="cannot read `pgbackrest info` output"):
        _parse_info(output, Path("/repo"))


def test_a_log_tail_is_its_last_lines_on_one_line_or_nothing(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text(
        "\n".join(f"line {n}" for n in range(1, 21))
        + "\n\n   \nFATAL:  password for postgresql://u:hunter2@h/db\n"
    )
    tail = log_tail(log)
    assert tail.endswith(" | line 20 | FATAL:  password for postgresql://u:***@h/db")
    assert tail.count(" | ") == TAIL_LINES - 1  # blank lines do not count
    assert "hunter2" not in tail
    assert log_tail(tmp_path / "never-written.log") == ""


@pytest.mark.parametrize("mode", [0o701, 0o710, 0o702, 0o720, 0o704, 0o740, 0o777])
def test_an_existing_repository_folder_loses_every_group_and_other_bit(
    tmp_path: Path, mode: int
) -> None:
    """Each of the six bits alone is one too many (other's execute as much as group's read)."""
    from dbops.ops.pitr._layout import make_dir

    repo = tmp_path / "repo"
    repo.mkdir()
    repo.chmod(mode)
    make_dir(repo)
    assert repo.stat().st_mode & 0o777 == 0o700
