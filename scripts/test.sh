#!/usr/bin/env bash
# Set up (first time) and run the test suite; extra arguments go to pytest (e.g. -m slow).
# Two worker processes (pytest-xdist; JAXRL_TEST_WORKERS=N to change, 0 for none): most tests compile
# and run small programs on one core, so two cores run the suite in about half the time; a file's tests
# stay on one worker, so its module fixtures are built once. A third worker was measured on clean clones
# (cold compilation cache, 2-core CPU): 647, 784 and 848 s against 734 s with two, CPU 183-196% against 180%;
# no gain beyond this machine's drift, so two it is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -n "${JAXRL_TEST_WORKERS:-2}" --dist loadfile "$@"
