"""`dbops keys status|rotate|generate`: the keys of encrypted columns (today `users.phone`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import note, print_kv, say

if TYPE_CHECKING:
    from dbops.config import Settings

__all__ = ["generate", "keys_app", "rotate", "status"]

keys_app = typer.Typer(
    help="Keys of encrypted columns: rows per key version, rotation, new keys.",
    epilog=(
        "Keys come from DBOPS_ENCRYPTION_KEYS(_FILE) and DBOPS_BLIND_INDEX_KEY(_FILE); without "
        "DATABASE_URL and without keys, dev keys are generated once into <DBOPS_HOME>/keys/."
    ),
    no_args_is_help=True,
)


@keys_app.command("status")
def status() -> None:
    """The keyring (versions, current, source) and how many rows each key version encrypts."""
    from dbops.cli.migrations import require_head
    from dbops.ops.keys import key_status

    settings = _target.settings()
    with _target.database(settings, _target.dsn_to_read(settings)) as db:
        require_head(db.dsn)
        report = key_status(db)
    rows = [
        ("current version", f"v{report.current}"),
        ("versions in keyring", ", ".join(f"v{v}" for v in report.versions)),
        ("key source", report.source),
    ]
    rows += [(f"rows on v{c.version}", f"{c.rows:,}") for c in report.counts]
    rows.append(("rows on old versions", f"{report.rows_on_old_versions:,}"))
    print_kv("users.phone encryption", rows)
    if report.missing_versions:
        missing = ", ".join(f"v{v}" for v in report.missing_versions)
        note(f"warning: rows use key versions the keyring lacks ({missing}): they cannot be read")


@keys_app.command("rotate")
def rotate(
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            max=100_000,
            help="Rows per transaction (default DBOPS_KEYS_ROTATE_BATCH_SIZE).",
        ),
    ] = None,
) -> None:
    """Re-encrypt every value not on the current key version; safe to interrupt and rerun."""
    from dbops.cli.migrations import require_head
    from dbops.ops.keys import rotate as run

    settings = _target.settings()
    with _target.database(settings, _target.dsn_to_change(settings)) as db:
        require_head(db.dsn)

        def progress(_batch: int, total: int) -> None:
            note(f"re-encrypted {total:,} rows ...")

        result = run(db, batch_size=batch_size, on_batch=progress)
    say(
        f"re-encrypted {result.rotated:,} rows to key v{result.current} in {result.batches:,} "
        f"batches, {result.seconds:.1f} s ({result.rows_per_s:,.0f} rows/s); "
        f"{result.remaining:,} rows left on old versions"
    )
    if result.remaining:
        note("rows stayed locked through every pass: run `dbops keys rotate` again")
        raise typer.Exit(1)


def _default_file(settings: Settings, *, blind_index: bool) -> Path:
    from dbops.crypto import BLIND_INDEX_FILE, ENCRYPTION_KEYS_FILE, embedded_key_dir

    configured = (
        settings.crypto.blind_index_key_file
        if blind_index
        else settings.crypto.encryption_keys_file
    )
    if configured is not None:
        return configured
    name = BLIND_INDEX_FILE if blind_index else ENCRYPTION_KEYS_FILE
    return embedded_key_dir(settings) / name


def _tell(message: str, *, show: bool) -> None:
    """``message`` on stdout, or on stderr when stdout carries the key (``--show``)."""
    (note if show else say)(message)


@keys_app.command("generate")
def generate(
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Key file to write (default DBOPS_ENCRYPTION_KEYS_FILE, else "
            "<DBOPS_HOME>/keys/encryption.keys).",
        ),
    ] = None,
    blind_index: Annotated[
        bool,
        typer.Option(
            "--blind-index",
            help="Write a blind index key file instead (only when none exists: that key is "
            "not rotated).",
        ),
    ] = False,
    show: Annotated[bool, typer.Option("--show", help="Also print the new key on stdout.")] = False,
) -> None:
    """Add a new encryption key version to a key file (mode 0600); it becomes the current one.

    Prints nothing secret unless --show. Then `dbops keys rotate` moves old rows to it.
    """
    import base64

    from dbops.crypto import format_keys, generate_key, parse_keys, write_key_file
    from dbops.errors import Conflict

    settings = _target.settings()
    path = file or _default_file(settings, blind_index=blind_index)
    key = generate_key()
    encoded = base64.b64encode(key).decode()
    if blind_index:
        if path.exists():
            raise Conflict(
                f"{path} exists: the blind index key is not rotated (every blind index would "
                "have to be rebuilt); keep the existing one"
            )
        write_key_file(path, encoded + "\n")
        _tell(f"wrote a blind index key to {path} (mode 0600)", show=show)
        if show:
            typer.echo(encoded)
        return
    keys = parse_keys(path.read_text(encoding="utf-8"), what=str(path)) if path.exists() else {}
    version = max(keys, default=0) + 1
    keys[version] = key
    write_key_file(path, format_keys(keys))
    _tell(
        f"wrote encryption key v{version} to {path} (mode 0600); it encrypts new values from "
        "the next start; run `dbops keys rotate` to move existing rows to it",
        show=show,
    )
    if settings.crypto.encryption_keys is not None:
        note("note: DBOPS_ENCRYPTION_KEYS is set and wins over files: add the new key there")
    elif settings.crypto.encryption_keys_file != path and not settings.embedded:
        note(f"note: set DBOPS_ENCRYPTION_KEYS_FILE={path} so that dbops reads this file")
    if show:
        typer.echo(f"v{version}:{encoded}")
