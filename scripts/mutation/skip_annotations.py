"""Skip the mutants of ``|`` that sit in annotations; keep those in running code.

Under ``from __future__ import annotations`` an annotation is never evaluated, so mutating
its ``X | None`` cannot change behaviour (equivalent by construction). A ``|`` outside one (a
set union, ``os.O_WRONLY | os.O_CREAT``, bit masks, ``isinstance(x, A | B)``) is real code and
stays in the run. ``skip_annotations.py SESSION.sqlite`` marks the former SKIPPED.
"""

from __future__ import annotations

import ast
import sqlite3
import sys
from pathlib import Path


def annotation_spans(path: Path) -> list[tuple[int, int, int, int]]:
    """(start row, start col, end row, end col) of every annotation in the module."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        for field in ("annotation", "returns"):
            ann = getattr(node, field, None)
            if isinstance(ann, ast.expr) and ann.end_lineno is not None:
                end_col = ann.end_col_offset or 0
                spans.append((ann.lineno, ann.col_offset, ann.end_lineno, end_col))
    return spans


def inside(row: int, col: int, span: tuple[int, int, int, int]) -> bool:
    """Whether (row, col) lies within the span (rows 1-based, columns 0-based, as ast's)."""
    start, end = (span[0], span[1]), (span[2], span[3])
    return start <= (row, col) < end


def main() -> None:
    """Mark the annotation ``|`` mutants of the session SKIPPED."""
    with sqlite3.connect(sys.argv[1]) as conn:
        jobs = conn.execute(
            """
            SELECT job_id, module_path, start_pos_row, start_pos_col FROM mutation_specs
            WHERE operator_name LIKE 'core/ReplaceBinaryOperator_BitOr_%'
              AND job_id NOT IN (SELECT job_id FROM work_results)
            """
        ).fetchall()
        spans: dict[str, list[tuple[int, int, int, int]]] = {}
        skipped = []
        for job, module, row, col in jobs:
            if module not in spans:
                spans[module] = annotation_spans(Path(module))
            if any(inside(row, col, span) for span in spans[module]):
                skipped.append((job,))
        conn.executemany(
            "INSERT INTO work_results (worker_outcome, output, job_id) "
            "VALUES ('SKIPPED', 'In an annotation', ?)",
            skipped,
        )
    print(f"skipped {len(skipped)} of {len(jobs)} mutants of '|' (in annotations)")


if __name__ == "__main__":
    main()
