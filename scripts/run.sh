#!/usr/bin/env bash
# Set up (idempotent) and start the dashboard.  Extra arguments go to start_dashboard.py.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python start_dashboard.py "$@"
