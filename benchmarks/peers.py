"""jaxrl against its peers on the peers' own configs, side by side -> benchmarks/results/peers-cpu.md.

    bash benchmarks/peers_setup.sh                  # once: the peers' venv and code, in benchmarks/.peers/
    python benchmarks/peers.py                      # every row, 3 interleaved pairs each
    python benchmarks/peers.py --rows a,c --pairs 5
    python benchmarks/peers.py --quick --pairs 1    # smoke test: tiny runs, table printed, nothing written

Rows:
  (a) PPO CartPole, PureJaxRL's config (purejaxrl/ppo.py: 4 envs x 128 steps, 4 epochs x 4 minibatches,
      lr 2.5e-4 annealed, 5e5 steps), 1 seed
  (b) the same, 8 seeds in one program
  (c) IPPO MPE simple_spread, JaxMARL's config (baselines/IPPO/config/ippo_ff_mpe.yaml) at 1e6 steps
  (d) PPO CartPole, Rejax's config (benchmarks/peers_lr_sweep.yaml's base, lr 7.5e-4), 1e5 steps, one
      deterministic evaluation of 128 episodes after training on both sides (Rejax's 101 evaluations
      inside training are off). Rejax's PPO differs in details it does not expose: gradients clipped
      elementwise (jaxrl: by global norm), Adam eps 1e-8 (jaxrl: 1e-5), actor and critic stepped apart
  (e) the 16-point lr grid of benchmarks/peers_lr_sweep.yaml: Rejax vmapped vs `jaxrl sweep`
  (f) DQN CartPole, PureJaxRL's config (purejaxrl/dqn.py's __main__: CleanRL's, 10 envs, 10k buffer, a
      batch of 128 each step from 1e4 steps on, hard target copy every 500 steps, 5e5 steps), 1 seed
  (g) PQN CartPole, purejaxql's config (purejaxql/config/alg/pqn_cartpole.yaml: 32 envs x 64 steps, 4 epochs
      x 16 minibatches, LayerNorm, Q(lambda), 5e5 steps), 1 seed; purejaxql's 20 greedy tests of 128
      episodes inside training are off (jaxrl's side runs none either)
  (h) SAC Pendulum, Rejax's config (rejax configs/gymnax/pendulum.yaml: 1 env, a gradient step of 256 per env
      step from 256 steps on, lr 0.01, Polyak 0.98, swish 64-64, observation normalisation, 1e4 steps), one
      deterministic evaluation of 128 episodes after training on both sides. Rejax bootstraps no time limit
      (Pendulum's episodes all end by one); jaxrl does

Each pair runs the peer (its own code, through benchmarks/peer_runners/, in the peers' venv), then the
`jaxrl` command (train or sweep, checkpoints at its default cadence, no persistent compilation cache:
both sides compile from scratch), each in a fresh process. Figures per side: compile s, run s and env
steps/s as each program reports them (ahead-of-time compilation, then the run), whole-process wall time
(launch to exit, imports and records included) and the final return: the mean return of the training
episodes finished in the last 5% of updates (jaxrl's definition, computed the same way from the peers'
episode statistics), or for (d) the deterministic evaluation. Ratios are jaxrl/peer per pair; medians
and [min-max] over pairs. A peer's whole process is its own code's: PureJaxRL's wrappers.py imports brax
and navix (~5 s on a busy 2-core machine) although its gymnax PPO uses neither; JaxMARL's IPPO imports
hydra and wandb and calls wandb.log (disabled) from the device once per update; purejaxql's PQN imports
hydra, wandb and safetensors. The final return of (f) and (g) is that of training episodes, acting
epsilon-greedily on both sides (PureJaxRL's epsilon ends at 0.05, purejaxql's at 0.2).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml

from common import machine, provenance, write_results

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
PEER_PYTHON = PEERS / "venv" / "bin" / "python"
RUNNERS = HERE / "peer_runners"
SWEEP_SPEC = HERE / "peers_lr_sweep.yaml"

# purejaxrl/ppo.py's __main__ config, in jaxrl's field names (the peers' keys are these upper-cased).
PUREJAXRL_CARTPOLE = dict(num_envs=4, num_steps=128, update_epochs=4, num_minibatches=4, lr=2.5e-4, anneal_lr=True,
                          gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                          activation="tanh", total_timesteps=500_000)
# JaxMARL's baselines/IPPO/config/ippo_ff_mpe.yaml, at 1e6 steps instead of 1e7.
JAXMARL_MPE = dict(PUREJAXRL_CARTPOLE, num_envs=16, total_timesteps=1_000_000)
REJAX_LR = 7.5e-4  # rejax's configs/gymnax/cartpole.yaml (ppo); the rest is the sweep spec's base
# Rows (f) and (g): the peer's config in its own keys, and the same in jaxrl's fields. The jaxrl field names and
# units must match jaxrl/algos/dqn.py's and pqn.py's Config (`jaxrl train --algo dqn --help`).
PUREJAXRL_DQN = {
    # purejaxrl/dqn.py's __main__ config (SEED, NUM_SEEDS, ENTITY, PROJECT: its main's, unused by make_train)
    "peer": dict(NUM_ENVS=10, BUFFER_SIZE=10_000, BUFFER_BATCH_SIZE=128, TOTAL_TIMESTEPS=500_000, EPSILON_START=1.0,
                 EPSILON_FINISH=0.05, EPSILON_ANNEAL_TIME=250_000, TARGET_UPDATE_INTERVAL=500, LR=2.5e-4,
                 LEARNING_STARTS=10_000, TRAINING_INTERVAL=10, LR_LINEAR_DECAY=False, GAMMA=0.99, TAU=1.0,
                 ENV_NAME="CartPole-v1", WANDB_MODE="disabled"),
    # the same (steps are env steps; epsilon decays over half the run), and what dqn.py fixes in its code:
    # QNetwork 120-84 relu, squared TD error, one-step targets, Adam without gradient clipping; every env
    # steps once, then one gradient step (TRAINING_INTERVAL counts env steps: 10 = one step of the 10 envs)
    "jaxrl": dict(num_envs=10, buffer_size=10_000, batch_size=128, total_timesteps=500_000, eps_start=1.0,
                  eps_end=0.05, eps_decay=0.5, target_update_interval=500, lr=2.5e-4, adam_eps=1e-8,
                  max_grad_norm=0.0, learning_starts=10_000, num_steps=1, gradient_steps=1, gamma=0.99, tau=1.0,
                  hidden_sizes=[120, 84], activation="relu", weight_init="lecun", loss="mse", double_q=False,
                  dueling=False, n_step=1),
}
PUREJAXQL_PQN = {
    # purejaxql/config/alg/pqn_cartpole.yaml and WANDB_MODE from config/config.yaml, but TEST_DURING_TRAINING,
    # True there (every 5% of updates, 128 greedy episodes): off, as jaxrl evaluates nothing during training
    "peer": dict(ALG_NAME="pqn", TOTAL_TIMESTEPS=500_000, TOTAL_TIMESTEPS_DECAY=500_000, NUM_ENVS=32, NUM_STEPS=64,
                 EPS_START=1.0, EPS_FINISH=0.2, EPS_DECAY=0.2, NUM_MINIBATCHES=16, NUM_EPOCHS=4, NORM_INPUT=False,
                 HIDDEN_SIZE=256, NUM_LAYERS=2, NORM_TYPE="layer_norm", LR=1e-4, MAX_GRAD_NORM=10,
                 LR_LINEAR_DECAY=True, REW_SCALE=0.1, GAMMA=0.99, LAMBDA=0.95, ENV_NAME="CartPole-v1",
                 ENV_KWARGS={}, TEST_DURING_TRAINING=False, WANDB_MODE="disabled"),
    # the same (EPS_DECAY: the fraction of updates over which epsilon decays; the lr decays to 0 over the
    # run); pqn_gymnax.py uses RAdam
    "jaxrl": dict(total_timesteps=500_000, num_envs=32, num_steps=64, eps_start=1.0, eps_end=0.2,
                  eps_decay=0.2, num_minibatches=16, update_epochs=4, hidden_sizes=[256, 256],
                  layer_norm=True, lr=1e-4, max_grad_norm=10.0, anneal_lr=True, reward_scale=0.1, gamma=0.99,
                  td_lambda=0.95, activation="relu"),
}
REJAX_SAC = {
    # rejax's configs/gymnax/pendulum.yaml (sac); its other fields at Rejax's defaults: 64-64 hidden layers,
    # log-std clipped to [-10, 2], no gradient clipping (max_grad_norm inf), target updated every step
    "peer": dict(env="Pendulum-v1", agent_kwargs={"activation": "swish"}, num_envs=1, buffer_size=10_000,
                 fill_buffer=256, batch_size=256, learning_rate=0.01, num_epochs=1, total_timesteps=10_000,
                 gamma=0.99, polyak=0.98, target_entropy_ratio=None, normalize_observations=True),
    # the same in jaxrl's fields (`jaxrl train --algo sac --help`): tau = 1 - polyak; swish is silu
    "jaxrl": dict(num_envs=1, buffer_size=10_000, learning_starts=256, batch_size=256, lr=0.01, gradient_steps=1,
                  total_timesteps=10_000, gamma=0.99, tau=0.02, activation="silu", hidden_sizes=[64, 64],
                  normalize_obs=True, max_grad_norm=0.0, target_update="update"),
}
# Row: (jaxrl algorithm, reference config, peer runner, peer checkout in .peers/)
VALUE_BASED = {"f": ("dqn", PUREJAXRL_DQN, "purejaxrl_dqn.py", "purejaxrl"),
               "g": ("pqn", PUREJAXQL_PQN, "purejaxql_pqn.py", "purejaxql")}
# Row: (jaxrl algorithm, reference config, env): Rejax's off-policy algorithms, evaluated after training
REJAX_OFF_POLICY = {"h": ("sac", REJAX_SAC, "gymnax:Pendulum-v1")}
QUICK_STEPS = {"a": 20_480, "b": 20_480, "c": 8_192, "d": 5_000, "e": 5_000, "f": 20_000, "g": 20_480, "h": 2_000}


@dataclass
class Row:
    key: str
    title: str
    peer: str
    seeds: int = 1


ROWS = {
    "a": Row("a", "PPO CartPole, PureJaxRL's config, 1 seed", "PureJaxRL"),
    "b": Row("b", "PPO CartPole, PureJaxRL's config, 8 seeds", "PureJaxRL", seeds=8),
    "c": Row("c", "IPPO MPE simple_spread, JaxMARL's config, 1e6 steps", "JaxMARL"),
    "d": Row("d", "PPO CartPole, Rejax's config, 1e5 steps, one final evaluation", "Rejax"),
    "e": Row("e", "16-point lr sweep, Rejax's config: Rejax vmapped vs `jaxrl sweep`", "Rejax"),
    "f": Row("f", "DQN CartPole, PureJaxRL's config, 1 seed", "PureJaxRL"),
    "g": Row("g", "PQN CartPole, purejaxql's config, 1 seed", "purejaxql"),
    "h": Row("h", "SAC Pendulum, Rejax's config, 1e4 steps, one final evaluation", "Rejax"),
}


def set_args(config: dict) -> list[str]:
    """`jaxrl train` arguments for a config in jaxrl's fields."""
    sets = [a for k, v in config.items() if k != "total_timesteps" for a in ("--set", f"{k}={v}")]
    return [*sets, "--total-timesteps", str(config["total_timesteps"])]


def rejax_config(config: dict) -> dict:
    """jaxrl's PPO fields as Rejax's PPO config (Rejax has no learning-rate annealing)."""
    assert not config["anneal_lr"]
    renamed = {"update_epochs": "num_epochs", "lr": "learning_rate"}
    out = {renamed.get(k, k): v for k, v in config.items() if k not in ("anneal_lr", "activation")}
    return {"env": "CartPole-v1", **out, "agent_kwargs": {"activation": config["activation"]}}


def commands(row: Row, quick: bool, work: Path) -> tuple[list[str], list[str], dict]:
    """(peer runner and arguments, jaxrl command, the row's config in jaxrl's fields)."""
    jaxrl = [sys.executable, "-m", "jaxrl.cli"]
    steps = {"total_timesteps": QUICK_STEPS[row.key]} if quick else {}
    if row.key in VALUE_BASED:
        algo, reference, runner, repo = VALUE_BASED[row.key]
        config = dict(reference["jaxrl"], **steps)
        peer_steps = {"TOTAL_TIMESTEPS": config["total_timesteps"]}
        if "TOTAL_TIMESTEPS_DECAY" in reference["peer"]:  # purejaxql's horizon of its decays: the run's
            peer_steps["TOTAL_TIMESTEPS_DECAY"] = config["total_timesteps"]
        peer = [RUNNERS / runner, "--repo", PEERS / repo, "--config", json.dumps({**reference["peer"], **peer_steps})]
        ours = [*jaxrl, "train", "--algo", algo, "--env", "gymnax:CartPole-v1", *set_args(config),
                "--eval-episodes", "0"]
    elif row.key in REJAX_OFF_POLICY:
        algo, reference, env_id = REJAX_OFF_POLICY[row.key]
        config = dict(reference["jaxrl"], **steps)
        peer = [RUNNERS / "rejax_offpolicy.py", "--algo", algo, "--eval-episodes", "128",
                "--config", json.dumps({**reference["peer"], "total_timesteps": config["total_timesteps"]})]
        ours = [*jaxrl, "train", "--algo", algo, "--env", env_id, *set_args(config), "--eval-episodes", "128"]
    elif row.peer == "PureJaxRL":
        config = dict(PUREJAXRL_CARTPOLE, **steps)
        peer = [RUNNERS / "purejaxrl_ppo.py", "--repo", PEERS / "purejaxrl",
                "--config", json.dumps({**{k.upper(): v for k, v in config.items()}, "ENV_NAME": "CartPole-v1"})]
        ours = [*jaxrl, "train", "--algo", "ppo", "--env", "gymnax:CartPole-v1", *set_args(config),
                "--eval-episodes", "0"]
    elif row.peer == "JaxMARL":
        config = dict(JAXMARL_MPE, **steps)
        peer = [RUNNERS / "jaxmarl_ippo.py", "--repo", PEERS / "JaxMARL", "--config", json.dumps(
            {**{k.upper(): v for k, v in config.items()}, "ENV_NAME": "MPE_simple_spread_v3", "ENV_KWARGS": {}})]
        ours = [*jaxrl, "train", "--algo", "ippo", "--env", "jaxmarl:MPE_simple_spread_v3", *set_args(config),
                "--eval-episodes", "0"]
    else:
        spec = yaml.safe_load(SWEEP_SPEC.read_text())
        spec["base"].update(steps)
        if row.key == "d":
            config = dict(spec["base"], lr=REJAX_LR)
            peer = [RUNNERS / "rejax_ppo.py", "--config", json.dumps(rejax_config(config)), "--eval-episodes", "128"]
            ours = [*jaxrl, "train", "--algo", "ppo", "--env", spec["env"], *set_args(config), "--eval-episodes", "128"]
        else:
            lrs = spec["space"]["lr"]
            config = dict(spec["base"], lr=f"{len(lrs)} values {lrs[0]}..{lrs[-1]}")
            peer = [RUNNERS / "rejax_ppo.py", "--config", json.dumps(rejax_config(spec["base"])),
                    "--lrs", ",".join(map(str, lrs))]
            (work / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            ours = [*jaxrl, "sweep", str(work / "sweep.yaml")]
    if row.seeds > 1:
        peer, ours = [*peer, "--seeds", str(row.seeds)], [*ours, "--seeds", str(row.seeds)]
        config = dict(config, seeds=row.seeds)
    return [str(a) for a in peer], ours, config


def timed(cmd: list[str], env: dict | None = None, timeout: float | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def run_peer(cmd: list[str], timeout: float | None = None) -> dict:
    wall, stdout = timed([str(PEER_PYTHON), *cmd], timeout=timeout)
    return dict(json.loads(stdout.strip().splitlines()[-1]), wall_s=wall)


def run_until_done(run, what: str, timeout: float, hung: list[str]) -> dict:
    """`run(timeout=...)`'s figures; a process still running after `timeout` s is killed and run again (twice at
    most), and `what` is added to `hung`. XLA's CPU runtime with jax 0.10.2 has been seen to block a process
    forever, every thread idle (PureJaxRL's 8-seed program, in this script); a pair must not wait for it."""
    for _ in range(3):
        try:
            return run(timeout=timeout)
        except subprocess.TimeoutExpired:
            hung.append(what)
            print(f"{what}: still running after {timeout:.0f} s, killed; running it again", flush=True)
    raise RuntimeError(f"{what} hung three times")


def run_jaxrl(cmd: list[str], out: Path, timeout: float | None = None) -> dict:
    """Figures of one `jaxrl train` or `jaxrl sweep` (no persistent compilation cache) from its summary.json."""
    env = dict(os.environ, JAXRL_COMPILE_CACHE="0")
    wall, _ = timed([*cmd, "--out", str(out), "--no-progress"], env, timeout)
    s = json.loads((out / "summary.json").read_text())
    if "runs" in s:  # a sweep: the mean over its runs, as for the peer
        with open(out / "runs.csv") as f:
            finals = [float(r["final_return"]) for r in csv.DictReader(f)]
        final = statistics.fmean(finals)
    else:
        final = s["eval"]["return_mean"] if s.get("eval") else s["final_return_mean"]
    return {"compile_s": s["compile_s"], "run_s": s["run_s"], "steps_per_second": s["steps_per_second"],
            "final_return": final, "wall_s": wall}


def run_row(row: Row, pairs: int, quick: bool, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"jaxrl-peers-{row.key}-") as tmp:
        work = Path(tmp)
        peer_cmd, jaxrl_cmd, config = commands(row, quick, work)
        peer, ours, hung = [], [], []
        for i in range(pairs):
            peer.append(run_until_done(partial(run_peer, peer_cmd), f"({row.key}) {row.peer} {i + 1}", timeout, hung))
            ours.append(run_until_done(partial(run_jaxrl, jaxrl_cmd, work / f"jaxrl{i}"), f"({row.key}) jaxrl {i + 1}",
                                       timeout, hung))
            print(f"({row.key}) pair {i + 1}/{pairs}: {row.peer} {json.dumps(peer[-1])}\n"
                  f"({row.key}) pair {i + 1}/{pairs}: jaxrl {json.dumps(ours[-1])}", flush=True)
    return {"row": row, "config": config, "peer": peer, "jaxrl": ours,
            "final_return_kind": peer[0]["final_return_kind"], "hung": hung}


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """Median [min-max]; the median alone where they are all the same."""
    text, low, high = (fmt.format(x) for x in (statistics.median(values), min(values), max(values)))
    return text if low == high else f"{text} [{low}-{high}]"


def rate(runs: list[dict]) -> str:
    """Env steps/s of a side's runs: in thousands, or as they are below 10k (off-policy rows)."""
    values = [x["steps_per_second"] for x in runs]
    if statistics.median(values) < 10_000:
        return spread(values, "{:,.0f}")
    return spread([v / 1e3 for v in values], "{:,.0f}k")


def ratios(result: dict, key: str) -> list[float]:
    return [o[key] / p[key] for p, o in zip(result["peer"], result["jaxrl"])]


def peer_versions() -> str:
    code = ("from importlib.metadata import version as v; print(', '.join(f'{p} {v(p)}' for p in "
            "('jax', 'flax', 'optax', 'gymnax', 'jaxmarl', 'rejax', 'distrax')))")
    return subprocess.run([str(PEER_PYTHON), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def table(results: list[dict], load: tuple[str, str]) -> str:
    sources = (PEERS / "sources.txt").read_text().strip().splitlines()
    lines = ["# jaxrl against its peers, side by side (CPU)", "",
             *provenance(" ".join(["peers.py", *sys.argv[1:]]), machine()),
             f"Peers' venv: {peer_versions()}. Peer code: " + "; ".join(sources) + ".",
             f"Load average (1, 5, 15 min) before: {load[0]}; after: {load[1]}.", "",
             "Interleaved pairs (peer, then jaxrl, each a fresh process, both compiling from scratch); jaxrl runs "
             "the `jaxrl` command with checkpoints at its default cadence. Ratios are jaxrl/peer per pair: "
             "median [min-max]. See the docstring of `benchmarks/peers.py` for the method.", "",
             "| case | jaxrl/peer env steps/s | jaxrl/peer whole-process time | final return, peer / jaxrl |",
             "|---|---|---|---|"]
    for r in results:
        finals = (f"{spread([p['final_return'] for p in r['peer']], '{:.1f}')} / "
                  f"{spread([o['final_return'] for o in r['jaxrl']], '{:.1f}')}")
        lines.append(f"| ({r['row'].key}) {r['row'].title} | {spread(ratios(r, 'steps_per_second'))} | "
                     f"{spread(ratios(r, 'wall_s'))} | {finals} |")
    for r in results:
        config = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines += ["", f"## ({r['row'].key}) {r['row'].title}", "", f"Config: {config}.",
                  f"Final return: {r['final_return_kind']}"
                  + (" (mean over the runs)." if r["row"].key == "e" else "."),
                  *([f"Killed as hung and run again: {', '.join(r['hung'])}."] if r["hung"] else []),
                  "", "| side | compile s | run s | env steps/s | whole process s | final return |",
                  "|---|---|---|---|---|---|"]
        for name, runs in ((r["row"].peer, r["peer"]), ("jaxrl", r["jaxrl"])):
            lines.append(f"| {name} | {spread([x['compile_s'] for x in runs], '{:.1f}')} | "
                         f"{spread([x['run_s'] for x in runs], '{:.1f}')} | "
                         f"{rate(runs)} | "
                         f"{spread([x['wall_s'] for x in runs], '{:.1f}')} | "
                         f"{spread([x['final_return'] for x in runs], '{:.1f}')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help="rows to run, e.g. a,c (default: all)")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved (peer, jaxrl) pairs per row")
    parser.add_argument("--quick", action="store_true", help="tiny runs to check that everything works")
    parser.add_argument("--out", help="results file (default: benchmarks/results/peers-cpu.md; --quick: none)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds after which a process counts as hung and is run again (default: 900)")
    args = parser.parse_args()
    rows = [ROWS[k] for k in args.rows.split(",")]
    if not PEER_PYTHON.exists():
        sys.exit("no peers' venv: run `bash benchmarks/peers_setup.sh` first")
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    results = [run_row(row, args.pairs, args.quick, args.timeout) for row in rows]
    load = (" ".join(load_before), " ".join(Path("/proc/loadavg").read_text().split()[:3]))
    text = table(results, load)
    write_results(text, args.out or (None if args.quick else HERE / "results" / "peers-cpu.md"))


if __name__ == "__main__":
    main()
