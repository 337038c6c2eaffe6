#!/usr/bin/env bash
# Create .venv (if missing) and install jaxrl into it, with extras given as $1 (e.g. "test").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
extras="${1:-}"
target="."
[ -n "$extras" ] && target=".[$extras]"
# Reinstall only when the project's declared dependencies changed.
hash="$(sha1sum < pyproject.toml | cut -c1-12)"
stamp=".venv/.jaxrl-installed-$hash-${extras:-base}"
# An install with extras (the tests') holds the base install too.
if [ ! -f "$stamp" ] && { [ -n "$extras" ] || ! compgen -G ".venv/.jaxrl-installed-$hash-*" > /dev/null; }; then
    echo "installing jaxrl${extras:+ [$extras]} into .venv ..." >&2
    .venv/bin/python -m pip install --quiet -e "$target"
    touch "$stamp"
fi
