"""What one PPO update costs, jaxrl against its peers, with every fixed cost taken out -> results/update-cost-cpu.md.

    bash benchmarks/peers_setup.sh          # once (see peers.py)
    python benchmarks/update_cost.py        # rows (a) and (d) of peers.py, 3 interleaved pairs (~8 min)
    python benchmarks/update_cost.py --rows d --pairs 5

`peers.py` compares whole runs: steps/s there includes each side's fixed costs (a first call's warm-up, init,
jaxrl's records and final checkpoint), which weigh a lot in a 1-second run such as Rejax's CartPole config.
Here every side runs its config at two lengths, N1 and N2 env steps, each in a fresh process, and the marginal
cost of an update is (run s at N2 - run s at N1) / (updates at N2 - updates at N1): the cost of the compiled
update alone. Three sides per pair, interleaved (peer, jaxrl's compiled program, `jaxrl train`; short then long):
- the peer (its own code, through benchmarks/peer_runners/, in the peers' venv), its run s as it reports it;
- jaxrl's compiled program: `ALGORITHM.make_train(config)`, the whole run as one jitted scan (no host layer);
- `jaxrl train` (records, progress, checkpoints at the default cadence), its run s from summary.json.
jaxrl's two sides differ by what the host layer costs per update. Ratios are jaxrl/peer per pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, provenance, write_results
from peers import (PEER_PYTHON, PUREJAXRL_CARTPOLE, REJAX_LR, RUNNERS, SWEEP_SPEC, PEERS, rejax_config, run_jaxrl,
                   set_args, spread)

CASES = {  # row: (title, peer, jaxrl config without total_timesteps, (N1, N2))
    "a": ("PPO CartPole, PureJaxRL's config, 1 seed", "PureJaxRL",
          {k: v for k, v in PUREJAXRL_CARTPOLE.items() if k != "total_timesteps"}, (100_352, 499_712)),
    "d": ("PPO CartPole, Rejax's config, 1 seed", "Rejax", None, (50_000, 250_000)),
}


def jaxrl_config(key: str) -> dict:
    if CASES[key][2] is not None:
        return dict(CASES[key][2])
    import yaml

    base = yaml.safe_load(SWEEP_SPEC.read_text())["base"]
    return {k: v for k, v in dict(base, lr=REJAX_LR).items() if k != "total_timesteps"}


def peer_command(key: str, steps: int) -> list[str]:
    config = dict(jaxrl_config(key), total_timesteps=steps)
    if key == "a":
        return [str(PEER_PYTHON), str(RUNNERS / "purejaxrl_ppo.py"), "--repo", str(PEERS / "purejaxrl"), "--config",
                json.dumps({**{k.upper(): v for k, v in config.items()}, "ENV_NAME": "CartPole-v1"})]
    return [str(PEER_PYTHON), str(RUNNERS / "rejax_ppo.py"), "--config", json.dumps(rejax_config(config))]


def run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compiled_program_run(config: dict) -> None:
    """The jaxrl side without its host layer: the whole run as one compiled function; prints one JSON line."""
    import jax

    from jaxrl.algos import ppo

    cfg = ppo.Config(env="gymnax:CartPole-v1", **config)
    start = time.perf_counter()
    train = jax.jit(ppo.ALGORITHM.make_train(cfg)).lower(jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(train(jax.random.PRNGKey(0)))
    print(json.dumps({"compile_s": compile_s, "run_s": time.perf_counter() - start,
                      "updates": cfg.num_updates}))


def updates(key: str, steps: int) -> int:
    c = jaxrl_config(key)
    return steps // (c["num_envs"] * c["num_steps"])


def measure(key: str, pairs: int) -> dict:
    n1, n2 = CASES[key][3]
    sides = {"peer": [], "compiled": [], "train": []}
    with tempfile.TemporaryDirectory(prefix=f"jaxrl-update-cost-{key}-") as tmp:
        for i in range(pairs):
            run_s = {side: {} for side in sides}
            for steps in (n1, n2):
                config = dict(jaxrl_config(key), total_timesteps=steps)
                run_s["peer"][steps] = run_json(peer_command(key, steps))["run_s"]
                run_s["compiled"][steps] = run_json([sys.executable, __file__, "--compiled-run",
                                                     json.dumps(config)])["run_s"]
                train = [sys.executable, "-m", "jaxrl.cli", "train", "--algo", "ppo", "--env", "gymnax:CartPole-v1",
                         *set_args(config), "--eval-episodes", "0"]
                run_s["train"][steps] = run_jaxrl(train, Path(tmp) / f"train-{i}-{steps}")["run_s"]
            for side in sides:
                sides[side].append(1e3 * (run_s[side][n2] - run_s[side][n1]) / (updates(key, n2) - updates(key, n1)))
            print(f"({key}) pair {i + 1}/{pairs}: ms per update " +
                  ", ".join(f"{side} {sides[side][-1]:.2f}" for side in sides), flush=True)
    return sides


def table(results: dict[str, dict]) -> str:
    lines = ["# The marginal cost of one PPO update, jaxrl against its peers (CPU)", "",
             *provenance(" ".join(["update_cost.py", *sys.argv[1:]]), machine()), "",
             "Each side runs its config at two lengths in fresh processes; ms per update = (run s at N2 - run s at "
             "N1) / (updates at N2 - updates at N1), so fixed costs (warm-up, init, records, final checkpoint) "
             "cancel. Sides interleaved per pair; median [min-max] over pairs. See the docstring of "
             "`benchmarks/update_cost.py`.", "",
             "| case | N1 / N2 env steps | peer ms/update | jaxrl compiled program ms/update | `jaxrl train` "
             "ms/update | compiled / peer | train / peer |", "|---|---|---|---|---|---|---|"]
    for key, sides in results.items():
        title, peer = CASES[key][:2]
        ratio = lambda side: spread([o / p for o, p in zip(sides[side], sides["peer"])])
        lines.append(f"| ({key}) {title} | {CASES[key][3][0]:,} / {CASES[key][3][1]:,} | {peer} "
                     f"{spread(sides['peer'])} | {spread(sides['compiled'])} | {spread(sides['train'])} | "
                     f"{ratio('compiled')} | {ratio('train')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(CASES), help="cases to run, e.g. d (default: all)")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs per case")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "update-cost-cpu.md"))
    parser.add_argument("--compiled-run", metavar="CONFIG", help=argparse.SUPPRESS)  # one jaxrl side, internal
    args = parser.parse_args()
    if args.compiled_run:
        return compiled_program_run(json.loads(args.compiled_run))
    if not PEER_PYTHON.exists():
        sys.exit("the peers' venv is missing: run `bash benchmarks/peers_setup.sh` first")
    keys = args.rows.split(",")
    unknown = [k for k in keys if k not in CASES]
    if unknown:
        sys.exit(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    write_results(table({key: measure(key, args.pairs) for key in keys}), args.out)


if __name__ == "__main__":
    main()
