#!/usr/bin/env bash
# Set up (first time) and run `jaxrl train` with any arguments, e.g. --env brax:inverted_pendulum.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/jaxrl train "$@"
