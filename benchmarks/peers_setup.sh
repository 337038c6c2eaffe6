#!/usr/bin/env bash
# Set up the peers that benchmarks/peers.py compares jaxrl with, outside this repository's tracked files:
#   benchmarks/.peers/venv       Python venv: the jax/flax/optax/gymnax/jaxmarl/brax versions of the jaxrl
#                                environment running this script, rejax 0.1.3 and what the peers import
#   benchmarks/.peers/purejaxrl  PureJaxRL (github.com/luchris429/purejaxrl): its PPO and DQN
#   benchmarks/.peers/purejaxql  purejaxql (github.com/mttga/purejaxql): the reference PQN
#   benchmarks/.peers/JaxMARL    JaxMARL's baselines/ (github.com/FLAIROx/JaxMARL); its envs are the jaxmarl
#                                package at the jaxrl environment's version, as on jaxrl's side
#   benchmarks/.peers/sources.txt  each one's upstream repository and the commit checked out
#
#   bash benchmarks/peers_setup.sh                      # clone the repositories from GitHub
#   bash benchmarks/peers_setup.sh --purejaxrl DIR --jaxmarl DIR --purejaxql DIR   # use checkouts you have
#
# JAXRL_PYTHON (default: python) is the interpreter of the jaxrl environment whose versions are matched;
# PEER_PYTHON (default: python3.11) makes the venv.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PEERS="$HERE/.peers"
PUREJAXRL_DIR="" JAXMARL_DIR="" PUREJAXQL_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --purejaxrl) PUREJAXRL_DIR="$(cd "$2" && pwd)"; shift 2 ;;
    --jaxmarl) JAXMARL_DIR="$(cd "$2" && pwd)"; shift 2 ;;
    --purejaxql) PUREJAXQL_DIR="$(cd "$2" && pwd)"; shift 2 ;;
    *) echo "usage: $0 [--purejaxrl DIR] [--jaxmarl DIR] [--purejaxql DIR]" >&2; exit 2 ;;
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
# PureJaxRL's wrappers.py imports brax and navix, its dqn.py flashbax; JaxMARL's IPPO imports hydra, omegaconf,
# wandb, distrax, matplotlib; purejaxql's pqn_gymnax.py hydra, omegaconf, wandb, safetensors; gymnax 1.0.1
# imports six without declaring it.
"$PEERS/venv/bin/python" -m pip install -q -c "$PEERS/constraints.txt" -r "$PEERS/constraints.txt" \
  rejax==0.1.3 flashbax==0.1.3 distrax navix hydra-core omegaconf wandb matplotlib six safetensors

declare -A UPSTREAM=([purejaxrl]=github.com/luchris429/purejaxrl [JaxMARL]=github.com/FLAIROx/JaxMARL
                     [purejaxql]=github.com/mttga/purejaxql)
# Only baselines/ of JaxMARL and purejaxql/ of purejaxql: their full checkouts include media files.
fetch() {  # name sparse-dirs... (a shallow clone of its upstream; sparse when directories are named)
  local dest="$PEERS/$1" url="https://${UPSTREAM[$1]}"; shift
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
else fetch purejaxrl; fi
if [ -n "$JAXMARL_DIR" ]; then use JaxMARL "$JAXMARL_DIR"
else fetch JaxMARL baselines; fi
if [ -n "$PUREJAXQL_DIR" ]; then use purejaxql "$PUREJAXQL_DIR"
else fetch purejaxql purejaxql; fi

{
  for name in purejaxrl JaxMARL purejaxql; do
    dir="$(cd "$PEERS/$name" && pwd -P)"
    commit="$(git -C "$dir" rev-parse HEAD 2>/dev/null || echo "commit unknown")"
    echo "$name: ${UPSTREAM[$name]} @ $commit"
  done
  echo "rejax: PyPI $("$PEERS/venv/bin/python" -c 'from importlib.metadata import version; print(version("rejax"))')"
} > "$PEERS/sources.txt"
cat "$PEERS/sources.txt"
echo "peers ready in $PEERS"
