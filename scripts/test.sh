#!/usr/bin/env bash
# Set up (idempotent) and run both test tiers.  With arguments, one pytest run with those arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --test
if (( $# )); then
  exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest -m "not system"     # fast tier first: logic, seconds
exec .venv/bin/python -m pytest -m system      # system tier: Redis, worker, model, FFmpeg, browser
