#!/usr/bin/env bash
# Re-run the current tests against every surviving mutant of a cosmic-ray session.
#   scripts/mutation/recheck.sh SESSION.sqlite TEST COMMAND...
# Run it in a clone (it applies each mutant to the tree, then restores the file).
set -u
session=$1; shift
CR="uv tool run --from cosmic-ray==8.7.0"
$CR cr-report "$session" --surviving-only 2>/dev/null | grep '^dbops/' | while read -r module op n; do
  $CR cosmic-ray apply "$module" "$op" "$n" >/dev/null 2>&1
  if "$@" >/dev/null 2>&1; then echo "SURVIVED $module $op $n"; else echo "killed   $module $op $n"; fi
  git checkout -q "$module"
done
