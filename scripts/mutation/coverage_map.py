r"""Build the line -> tests map ``tests_for.py`` uses, from one run of the suite under coverage.

Run the suite once in the mutation clone with per-test contexts (pytest-cov, kept out of the
project's dependencies)::

    uv pip install --target /tmp/covlib --no-deps pytest-cov==7.1.0 coverage==7.13.0
    PYTHONPATH=/tmp/covlib .venv/bin/python -m pytest -q --cov=dbops --cov-context=test \\
        --cov-report=
    PYTHONPATH=/tmp/covlib .venv/bin/python scripts/mutation/coverage_map.py .coverage \\
        > /tmp/covmap.json

The map is ``{"dbops/x.py": {"LINE": ["tests/...py::test_name", ...]}}``: contexts are cut to
the test function (its parameters all run), and lines executed only while a module is imported
(no test's context) are left out: the module's own tests already cover those.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from coverage import CoverageData  # type: ignore[import-not-found,unused-ignore]


def test_of(context: str) -> str | None:
    """``tests/a.py::test_b[x]|run`` -> ``tests/a.py::test_b``; None for the empty context."""
    node = context.split("|", 1)[0].split("[", 1)[0]
    return node if "::" in node else None


def main() -> None:
    """Print the map of the coverage data file named on the command line."""
    data = CoverageData(basename=sys.argv[1])
    data.read()
    root = Path.cwd().resolve()
    out: dict[str, dict[str, list[str]]] = {}
    for measured in sorted(data.measured_files()):
        try:
            module = Path(measured).resolve().relative_to(root).as_posix()
        except ValueError:
            continue
        lines: dict[str, list[str]] = {}
        for line, contexts in sorted((data.contexts_by_lineno(measured) or {}).items()):
            tests = sorted({t for c in contexts if (t := test_of(c))})
            if tests:
                lines[str(line)] = tests
        out[module] = lines
    json.dump(out, sys.stdout, separators=(",", ":"))


if __name__ == "__main__":
    main()
