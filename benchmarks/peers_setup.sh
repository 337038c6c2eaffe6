#!/usr/bin/env bash
# Set up the peers that benchmarks/peers.py compares jaxrl with, outside this repository's tracked files:
#   benchmarks/.peers/venv       Python venv: the jax/flax/optax/gymnax/jaxmarl/brax versions of the jaxrl
#                                environment running this script, rejax 0.1.3 and what the peers import
#   benchmarks/.peers/purejaxrl  PureJaxRL (github.com/luchris429/purejaxrl)
#   benchmarks/.peers/JaxMARL    JaxMARL's baselines/ (github.com/FLAIROx/JaxMARL); its envs are the jaxmarl
#                                package at the jaxrl environment's version, as on jaxrl's side
#   benchmarks/.peers/sources.txt  where each came from, with its commit
#
#   bash benchmarks/peers_setup.sh                      # clone both repositories from GitHub
#   bash benchmarks/peers_setup.sh --purejaxrl DIR --jaxmarl DIR   # use checkouts you already have
#
# JAXRL_PYTHON (default: python) is the interpreter of the jaxrl environment whose versions are matched;
# PEER_PYTHON (default: python3.11) makes the venv.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PEERS="$HERE/.peers"
PUREJAXRL_DIR="" JAXMARL_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --purejaxrl) PUREJAXRL_DIR="$(cd "$2" && pwd)"; shift 2 ;;
    --jaxmarl) JAXMARL_DIR="$(cd "$2" && pwd)"; shift 2 ;;
    *) echo "usage: $0 [--purejaxrl DIR] [--jaxmarl DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$PEERS"

# The same versions on both sides of every comparison.
"${JAXRL_PYTHON:-python}" - > "$PEERS/constraints.txt" <<'EOF'
from importlib.metadata import version
for name in ("jax", "jaxlib", "flax", "optax", "chex", "gymnax", "jaxmarl", "brax", "numpy"):
    print(f"{name}=={version(name)}")
EOF
[ -x "$PEERS/venv/bin/python" ] || "${PEER_PYTHON:-python3.11}" -m venv "$PEERS/venv"
"$PEERS/venv/bin/python" -m pip install -q --upgrade pip
# PureJaxRL's wrappers.py imports brax and navix; JaxMARL's IPPO imports hydra, omegaconf, wandb, distrax,
# matplotlib; gymnax 1.0.1 imports six without declaring it.
"$PEERS/venv/bin/python" -m pip install -q -c "$PEERS/constraints.txt" -r "$PEERS/constraints.txt" \
  rejax==0.1.3 distrax navix hydra-core omegaconf wandb matplotlib six

# Only baselines/ of JaxMARL: its full checkout includes large media files.
fetch() {  # name url sparse-dirs... (a shallow clone; sparse when directories are named)
  local dest="$PEERS/$1" url="$2"; shift 2
  rm -rf "$dest"
  if [ $# -gt 0 ]; then
    git clone -q --depth 1 --filter=blob:none --sparse "$url" "$dest"
    git -C "$dest" sparse-checkout set "$@"
  else
    git clone -q --depth 1 "$url" "$dest"
  fi
}
use() {  # name dir: a link to a checkout given on the command line
  rm -rf "${PEERS:?}/$1"
  ln -s "$2" "$PEERS/$1"
}
if [ -n "$PUREJAXRL_DIR" ]; then use purejaxrl "$PUREJAXRL_DIR"
else fetch purejaxrl https://github.com/luchris429/purejaxrl; fi
if [ -n "$JAXMARL_DIR" ]; then use JaxMARL "$JAXMARL_DIR"
else fetch JaxMARL https://github.com/FLAIROx/JaxMARL baselines; fi

{
  for name in purejaxrl JaxMARL; do
    dir="$(cd "$PEERS/$name" && pwd -P)"
    commit="$(git -C "$dir" rev-parse HEAD 2>/dev/null || echo "commit unknown")"
    echo "$name: $(git -C "$dir" remote get-url origin 2>/dev/null || echo "$dir") @ $commit"
  done
  echo "rejax: PyPI $("$PEERS/venv/bin/python" -c 'from importlib.metadata import version; print(version("rejax"))')"
} > "$PEERS/sources.txt"
cat "$PEERS/sources.txt"
echo "peers ready in $PEERS"
