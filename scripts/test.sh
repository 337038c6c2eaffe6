#!/usr/bin/env bash
# Set up (first time) and run the test suite; extra arguments go to pytest (e.g. -m slow).
# Three worker processes (pytest-xdist; JAXRL_TEST_WORKERS=N to change, 0 for none), even on two cores:
# most tests compile and run small programs on one core, and many wait on `jaxrl` subprocesses or files, so
# with two workers the cores idle ~10% of the time. Measured on clean clones (cold compilation cache, 2-core
# CPU, the same tests): 2 workers 734 s at 180% CPU; 3 workers 647 s and 784 s at 196% and 183% (this kind of
# machine drifts by +-20% in speed, so the gain is within its noise; the idle share is not). A file's tests stay
# on one worker, so its module fixtures are built once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -n "${JAXRL_TEST_WORKERS:-3}" --dist loadfile "$@"
