#!/usr/bin/env bash
# Rebuild every bundled dataset from the command in its card (run from anywhere; needs `physdyn` on PATH).
set -euo pipefail
cd "$(dirname "$0")"
for card in *.md; do
    [ "$card" = README.md ] && continue
    command=$(sed -n '/^```bash$/,/^```$/p' "$card" | grep '^physdyn ')
    echo "+ $command --force"
    eval "$command --force"
done
