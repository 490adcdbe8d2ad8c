#!/usr/bin/env bash
# Set up (idempotent) and evaluate the bundled example images.
# Offline there are no CLIP weights, so the CLIP judges are listed as skipped
# (--allow-missing-models); give --clip SOURCE to run them (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
IJ=.venv/bin/imagejury
set +e
echo "== a headshot of the right person"
$IJ evaluate examples/astronaut_headshot.jpg --task-type headshot --ref identity=examples/astronaut_reference.jpg \
    --prompt "professional headshot of a smiling astronaut in a white spacesuit" --allow-missing-models "$@"
echo "exit code $?"
echo "== the same, badly blurred"
$IJ evaluate examples/astronaut_blurred.jpg --task-type headshot --ref identity=examples/astronaut_reference.jpg \
    --allow-missing-models "$@"
echo "exit code $?"
echo "== a cat where the astronaut should be"
$IJ evaluate examples/chelsea.jpg --task-type headshot --ref identity=examples/astronaut_reference.jpg \
    --allow-missing-models "$@"
echo "exit code $?"
exit 0
