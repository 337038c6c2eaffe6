#!/usr/bin/env bash
# Set up (first time) and run `jaxrl train` with any arguments, e.g. --env brax:inverted_pendulum.
# jaxrl runs in the caller's directory: relative --config/--out paths and the default runs/ resolve there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bash "$repo/scripts/setup.sh"
exec "$repo/.venv/bin/jaxrl" train "$@"
