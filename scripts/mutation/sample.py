"""Keep a seeded random sample of a cosmic-ray session's pending mutants; skip the rest.

The database-bound modules take about ten seconds a mutant (each test run starts its own
cluster), too slow to run every one. A uniform random sample estimates the share killed with
a known margin: ``sample.py SESSION.sqlite 150 --seed 16`` leaves 150 pending jobs, drawn
from the mutants sorted by place (so the same seed draws the same sample on any machine), and
marks the others SKIPPED, the way cosmic-ray's own filters do. ``--shard 0/2`` and
``--shard 1/2`` split one sample between two clones (two cores).
"""

from __future__ import annotations

import argparse
import random
import sqlite3


def main() -> None:
    """Parse the arguments and thin the session."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session")
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--shard",
        default="0/1",
        help="I/N: keep only every N-th mutant of the sample from the I-th (one clone per core)",
    )
    args = parser.parse_args()
    shard, shards = (int(x) for x in args.shard.split("/"))
    with sqlite3.connect(args.session) as conn:
        pending = conn.execute(
            """
            SELECT s.job_id FROM mutation_specs s
            WHERE s.job_id NOT IN (SELECT job_id FROM work_results)
            ORDER BY s.module_path, s.start_pos_row, s.start_pos_col, s.operator_name,
                     s.occurrence
            """
        ).fetchall()
        jobs = [row[0] for row in pending]
        sampler = random.Random(args.seed)  # noqa: S311 - a reproducible sample, not a secret
        drawn = sampler.sample(jobs, min(args.count, len(jobs)))
        keep = set(drawn[shard::shards])
        conn.executemany(
            "INSERT INTO work_results (worker_outcome, output, job_id) "
            "VALUES ('SKIPPED', 'Not in the sample', ?)",
            [(job,) for job in jobs if job not in keep],
        )
    print(f"kept {len(keep)} of {len(jobs)} pending mutants (seed {args.seed}, {args.shard})")


if __name__ == "__main__":
    main()
