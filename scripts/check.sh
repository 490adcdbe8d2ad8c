#!/usr/bin/env bash
# The checks that keep the house standing: lint, format, types, import layering.
# CI runs this before the tests; run it yourself before a commit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/ruff ] || bash scripts/setup.sh >/dev/null
V=.venv/bin
echo "== ruff (lint)"
$V/ruff check .
echo "== ruff (format)"
$V/ruff format --check .
# mypy and import-linter read the package from disk; the repository keeps it in three
# folders (evaluator/ = imagejury, judges/ = imagejury.judges, models/ = imagejury.models),
# so they look at a tree of links laid out like the installed package
tree=build/typecheck
rm -rf "$tree" && mkdir -p "$tree/imagejury"
for f in evaluator/* evaluator/.[!.]*; do
    [ -e "$f" ] || continue
    case "$(basename "$f")" in __pycache__) continue ;; esac
    ln -s "../../../$f" "$tree/imagejury/$(basename "$f")"
done
ln -s ../../../judges "$tree/imagejury/judges"
ln -s ../../../models "$tree/imagejury/models"
echo "== mypy"
MYPYPATH="$tree" $V/mypy --no-incremental
echo "== import layering (import-linter)"
PYTHONPATH="$tree" $V/lint-imports --no-cache
