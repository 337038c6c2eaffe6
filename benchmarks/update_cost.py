"""jaxrl's compiled training programs against the peers', alternated in one process -> results/update-cost-cpu.md.

    bash benchmarks/peers_setup.sh          # once (see peers.py)
    python benchmarks/update_cost.py        # rows (a), (c)-(f) of peers.py, 7 alternations each (~15 min)
    python benchmarks/update_cost.py --rows d --reps 11

`peers.py` compares whole processes, one after the other; on a shared machine whose speed drifts by +-20% over
a minute, and in runs of a second or two (Rejax's CartPole config), that cannot resolve the compiled programs
themselves. Here both programs are compiled in ONE process (the peers' venv, with this checkout's jaxrl on its
path: the same jax, flax, optax and gymnax versions) and then called alternately, peer then jaxrl, each call
a whole training run (init and every update, one jitted function, no host layer on either side), so the
pairs see the same machine state. Reported: each side's env steps/s (median [min-max] over calls) and the
per-pair ratio jaxrl/peer. Sides:
- (a) PureJaxRL's `make_train` (purejaxrl/ppo.py, unchanged) vs `jaxrl.algos.ppo.ALGORITHM.make_train` at
  PureJaxRL's CartPole config, 5e5 steps, 1 seed;
- (c) JaxMARL's IPPO `make_train` (baselines/IPPO/ippo_ff_mpe.py, unchanged: its per-update `io_callback` to a
  disabled wandb included) vs `jaxrl.algos.ippo`'s at its MPE simple_spread config, 1e6 steps;
- (d) Rejax's `PPO.train` (rejax 0.1.3, its evaluations off) vs jaxrl's at Rejax's CartPole config, 1e5 steps;
- (e) the same, vmapped over the 16 learning rates of `peers_lr_sweep.yaml` on both sides (Rejax's way: the
  learning rate as a pytree field; jaxrl's: `train(key, hparams)` with the lr traced, as `jaxrl sweep` runs it);
- (f) PureJaxRL's DQN `make_train` (purejaxrl/dqn.py) vs `jaxrl.algos.dqn`'s at its config (peers.py's row f).
The peers' envs are gymnax's with the 5-value step their code expects (peer_runners/shared.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ROWS = {"a": "PPO CartPole, PureJaxRL's config, 5e5 steps, 1 seed",
        "c": "IPPO MPE simple_spread, JaxMARL's config, 1e6 steps, 1 seed",
        "d": "PPO CartPole, Rejax's config, 1e5 steps, 1 seed",
        "e": "PPO CartPole, Rejax's config, 16 learning rates vmapped (peers.py's sweep row)",
        "f": "DQN CartPole, PureJaxRL's config, 5e5 steps, 1 seed"}


def import_jaxrl() -> None:
    """This checkout's jaxrl in the peers' venv: the package, with envs/ as jaxrl.envs (setuptools' package-dir)."""
    sys.path.insert(0, str(REPO))
    import jaxrl

    spec = importlib.util.spec_from_file_location("jaxrl.envs", REPO / "envs" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "envs")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["jaxrl.envs"] = module
    spec.loader.exec_module(module)
    jaxrl.envs = module


def programs(row: str):
    """(peer name, config, peer train(key), jaxrl train(key), env steps per call), both jitted, not compiled."""
    import jax
    import yaml

    from peers import PUREJAXRL_CARTPOLE, REJAX_LR, SWEEP_SPEC, rejax_config
    from jaxrl.algos import ppo as jaxrl_ppo

    sys.path.insert(0, str(HERE / "peer_runners"))
    from shared import FiveValueStep

    if row == "f":
        from peers import PUREJAXRL_DQN
        from jaxrl.algos import dqn as jaxrl_dqn
        from shared import stats_log_wrapper, window_updates

        sys.path.insert(0, str(HERE / ".peers" / "purejaxrl" / "purejaxrl"))
        import dqn as purejaxrl_dqn  # PureJaxRL's own module

        peer_config, config = PUREJAXRL_DQN["peer"], dict(PUREJAXRL_DQN["jaxrl"])
        num_updates = peer_config["TOTAL_TIMESTEPS"] // peer_config["NUM_ENVS"]
        purejaxrl_dqn.LogWrapper = stats_log_wrapper(num_updates - window_updates(num_updates))
        jax.tree_map = jax.tree.map  # dqn.py's, since removed from jax
        ours = jaxrl_dqn.Config(env="gymnax:CartPole-v1", **{k: tuple(v) if isinstance(v, list) else v
                                                              for k, v in config.items()})
        return ("PureJaxRL", config, jax.jit(purejaxrl_dqn.make_train(peer_config)),
                jax.jit(jaxrl_dqn.ALGORITHM.make_train(ours)), ours.num_updates * ours.steps_per_update)
    if row == "c":
        from peers import JAXMARL_MPE
        from jaxrl.algos import ippo as jaxrl_ippo

        sys.path.insert(0, str(HERE / ".peers" / "JaxMARL" / "baselines" / "IPPO"))
        import ippo_ff_mpe  # JaxMARL's own module
        import wandb

        wandb.init(mode="disabled")
        config = dict(JAXMARL_MPE)
        peer_config = {**{k.upper(): v for k, v in config.items()}, "ENV_NAME": "MPE_simple_spread_v3",
                       "ENV_KWARGS": {}}
        ours = jaxrl_ippo.Config(env="jaxmarl:MPE_simple_spread_v3", **config)
        return ("JaxMARL", config, jax.jit(ippo_ff_mpe.make_train(peer_config)),
                jax.jit(jaxrl_ippo.ALGORITHM.make_train(ours)), ours.num_updates * ours.steps_per_update)
    if row == "a":
        config = dict(PUREJAXRL_CARTPOLE)
        sys.path.insert(0, str(HERE / ".peers" / "purejaxrl" / "purejaxrl"))
        import gymnax
        import ppo as purejaxrl_ppo  # PureJaxRL's own module

        purejaxrl_ppo.gymnax = types.SimpleNamespace(
            make=lambda name: (lambda env, params: (FiveValueStep(env), params))(*gymnax.make(name)))
        peer_config = {**{k.upper(): v for k, v in config.items()}, "ENV_NAME": "CartPole-v1"}
        peer_train, name = jax.jit(purejaxrl_ppo.make_train(peer_config)), "PureJaxRL"
    else:  # d, e
        config = dict(yaml.safe_load(SWEEP_SPEC.read_text())["base"], lr=REJAX_LR)
        import gymnax
        from rejax import PPO

        env, env_params = gymnax.make("CartPole-v1")
        peer_config = rejax_config(config)
        peer_config.pop("env")
        algo = PPO.create(env=FiveValueStep(env), env_params=env_params, **peer_config,
                          skip_initial_evaluation=True, eval_freq=config["total_timesteps"])
        algo = algo.replace(eval_callback=lambda algo, ts, rng: ())
        peer_train, name = jax.jit(lambda key: algo.train(key)[0]), "Rejax"
    ours = jaxrl_ppo.Config(env="gymnax:CartPole-v1", **config)
    jaxrl_train = jaxrl_ppo.ALGORITHM.make_train(ours)
    steps = ours.num_updates * ours.steps_per_update
    if row != "e":
        return name, config, peer_train, jax.jit(jaxrl_train), steps
    import jax.numpy as jnp

    from jaxrl.config import hparams

    lrs = jnp.asarray(yaml.safe_load(SWEEP_SPEC.read_text())["space"]["lr"], jnp.float32)
    hp = hparams(ours)
    rejax_sweep = jax.jit(lambda key: jax.vmap(lambda lr: algo.replace(learning_rate=lr).train(key)[0])(lrs))
    jaxrl_sweep = jax.jit(lambda key: jax.vmap(lambda lr: jaxrl_train(key, {**hp, "lr": lr}))(lrs))
    return name, dict(config, lr=f"{len(lrs)} values"), rejax_sweep, jaxrl_sweep, steps * len(lrs)


def measure(row: str, reps: int) -> dict:
    """In the peers' venv: compile both, then `reps` alternating calls; one JSON line on stdout."""
    import jax

    name, config, peer_train, jaxrl_train, steps = programs(row)
    key = jax.random.PRNGKey(0)
    compiled = {}
    for side, fn in (("peer", peer_train), ("jaxrl", jaxrl_train)):
        start = time.perf_counter()
        compiled[side] = fn.lower(key).compile()
        jax.block_until_ready(compiled[side](key))  # the first call's warm-up is not timed
        print(f"({row}) {side} compiled in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    seconds = {"peer": [], "jaxrl": []}
    for i in range(reps):
        for side in ("peer", "jaxrl"):
            start = time.perf_counter()
            jax.block_until_ready(compiled[side](key))
            seconds[side].append(time.perf_counter() - start)
        print(f"({row}) call {i + 1}/{reps}: {name} {seconds['peer'][-1]:.2f} s, jaxrl {seconds['jaxrl'][-1]:.2f} s",
              file=sys.stderr, flush=True)
    print(json.dumps({"row": row, "peer": name, "config": config, "env_steps": steps, "seconds": seconds}))


def spread(values, fmt="{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def table(results: list[dict]) -> str:
    from common import machine, provenance

    lines = ["# jaxrl's compiled training programs against the peers', alternated in one process (CPU)", "",
             *provenance(" ".join(["update_cost.py", *sys.argv[1:]]), machine()), "",
             "Both whole-run programs compiled in one process and called alternately (peer, jaxrl), no host layer "
             "on either side; steps/s per call, median [min-max]; ratio jaxrl/peer per alternation. See the "
             "docstring of `benchmarks/update_cost.py`.", "",
             "| case | peer | peer env steps/s | jaxrl env steps/s | jaxrl/peer steps/s | calls |",
             "|---|---|---|---|---|---|"]
    for r in results:
        rate = {side: [r["env_steps"] / s / 1e3 for s in r["seconds"][side]] for side in ("peer", "jaxrl")}
        ratio = [p / j for p, j in zip(r["seconds"]["peer"], r["seconds"]["jaxrl"])]
        lines.append(f"| ({r['row']}) {ROWS[r['row']]} | {r['peer']} | {spread(rate['peer'], '{:.0f}k')} | "
                     f"{spread(rate['jaxrl'], '{:.0f}k')} | {spread(ratio)} | {len(ratio)} |")
    for r in results:
        lines += ["", f"({r['row']}) config: " + ", ".join(f"{k}={v}" for k, v in r["config"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS), help="cases to run, e.g. d (default: all)")
    parser.add_argument("--reps", type=int, default=7, help="alternating calls per case")
    parser.add_argument("--out", default=str(HERE / "results" / "update-cost-cpu.md"))
    parser.add_argument("--in-peer-venv", metavar="ROW", help=argparse.SUPPRESS)  # the measuring process
    args = parser.parse_args()
    if args.in_peer_venv:
        import_jaxrl()
        return measure(args.in_peer_venv, args.reps)
    from common import write_results
    from peers import PEER_PYTHON

    if not PEER_PYTHON.exists():
        sys.exit("the peers' venv is missing: run `bash benchmarks/peers_setup.sh` first")
    rows = args.rows.split(",")
    if unknown := [r for r in rows if r not in ROWS]:
        sys.exit(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    env = dict(os.environ, JAX_ENABLE_COMPILATION_CACHE="false")
    results = []
    for row in rows:
        proc = subprocess.run([str(PEER_PYTHON), __file__, "--in-peer-venv", row, "--reps", str(args.reps)],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=HERE)
        if proc.returncode:
            sys.exit(f"row ({row}) failed (its output is above)")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    write_results(table(results), args.out)


if __name__ == "__main__":
    main()
