"""PPO on gymnax CartPole-v1: compile time, run time, env steps/s, final return.

    python benchmarks/ppo_cartpole.py            # all cases, writes benchmarks/RESULTS.md
    python benchmarks/ppo_cartpole.py --case purejaxrl-1seed --json   # one case (used internally)

Cases: PureJaxRL's CartPole config (4 envs x 128 steps, 4 epochs x 4 minibatches,
5e5 steps) with 1 and 8 seeds; the default `jaxrl train` config; the ceiling
(same env stack and network stepping, no learning); and the whole `jaxrl train`
process (imports, compile, training, record) with a cold and a warm
compilation cache. Each case runs in a fresh process, so compilation is never
shared between cases; compile time is measured separately from run time
(ahead-of-time compilation, then the run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, provenance

HERE = Path(__file__).resolve().parent
PUREJAXRL = dict(num_envs=4, num_steps=128, update_epochs=4, num_minibatches=4, total_timesteps=500_000,
                 lr=2.5e-4, anneal_lr=True)
CASES = {
    "purejaxrl-1seed": dict(PUREJAXRL, num_seeds=1),
    "purejaxrl-8seeds": dict(PUREJAXRL, num_seeds=8),
    "jaxrl-default": dict(),
}


def run_case(name: str) -> dict:
    import jax

    from jaxrl import api, loop, records
    from jaxrl.algos import ppo
    from jaxrl.config import hparams

    config = api.resolve_config("ppo", overrides=CASES[name])
    program = ppo.make_program(config)
    keys = jax.vmap(jax.random.PRNGKey)(jax.numpy.arange(config.seed, config.seed + config.num_seeds))
    _, metrics, _, timings = loop.run(program, keys, hparams(config))
    steps = program.num_updates * program.steps_per_update * config.num_seeds
    final = records.final_returns(metrics)
    return {"case": name, "config": shown_config(config), "compile_s": timings["compile_s"],
            "run_s": timings["run_s"], "env_steps": steps, "steps_per_s": steps / timings["run_s"],
            "final_return": float(final.mean())}


def shown_config(config) -> dict:
    keys = ("num_envs", "num_steps", "update_epochs", "num_minibatches", "total_timesteps", "lr", "num_seeds")
    return {k: getattr(config, k) for k in keys}


def run_ceiling(num_envs: int) -> dict:
    """Env stack + policy forward + sampling, no learning: the rollout's upper bound."""
    import jax

    from jaxrl import distributions, envs
    from jaxrl.algos import ppo
    from jaxrl.rollout import collect_rollout

    config = ppo.Config(num_envs=num_envs)
    base = envs.make(config.env)
    params_env = base.default_params
    network, discrete = ppo.make_network(config, base, params_env)
    env = envs.make_vec_env(base, num_envs)
    steps_per_call = 128 * 100

    def rollout(key):
        obs, state = env.reset(key, params_env)
        params = network.init(key, obs)

        def policy(k, o):
            dist, value = network.apply(params, o)
            action, log_prob = distributions.sample_log_prob(k, dist, discrete)
            return action, {"log_prob": log_prob, "value": value}

        traj, _, _, _ = collect_rollout(env, params_env, policy, state, obs, key, steps_per_call, config.unroll)
        return traj.reward.sum()

    key = jax.random.PRNGKey(0)
    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(key).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(key))
    start = time.perf_counter()
    repeats = max(1, 4_000_000 // (steps_per_call * num_envs))
    for i in range(repeats):
        out = compiled(jax.random.PRNGKey(i))
    jax.block_until_ready(out)
    run_s = time.perf_counter() - start
    steps = repeats * steps_per_call * num_envs
    return {"case": f"ceiling-{num_envs}envs", "config": {"num_envs": num_envs}, "compile_s": compile_s,
            "run_s": run_s, "env_steps": steps, "steps_per_s": steps / run_s, "final_return": None}


def whole_process(cache_dir: str, label: str) -> dict:
    out = tempfile.mkdtemp(prefix="jaxrl-bench-run-")
    os.rmdir(out)
    env = dict(os.environ, JAXRL_CACHE_DIR=cache_dir)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jaxrl.cli", "train", "--no-progress", "--out", out],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    summary = json.loads((Path(out) / "summary.json").read_text())
    shutil.rmtree(out)
    from jaxrl.algos import ppo

    return {"case": f"jaxrl train, whole process, {label} cache", "config": shown_config(ppo.Config()), "compile_s": summary["compile_s"],
            "run_s": summary["run_s"], "env_steps": summary["env_steps_per_seed"],
            "steps_per_s": summary["steps_per_second"], "final_return": summary["final_return_mean"],
            "wall_s": wall}


def child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args, "--json"], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_results(rows: list[dict], info: dict, path: Path) -> None:
    lines = [
        "# PPO on gymnax CartPole-v1",
        "",
        *provenance("ppo_cartpole.py", info),
        "",
        "Compile = ahead-of-time compilation of the init and chunk programs (no persistent cache); run = the",
        "compiled training itself; steps/s = env steps of all seeds / run s; final return = mean return of",
        "training episodes in the last 5% of updates, averaged over seeds.",
        "",
        "| case | config | compile s | run s | wall s | env steps/s | final return |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items()) or "defaults"
        fr = "–" if r["final_return"] is None else f"{r['final_return']:.1f}"
        wall = f"{r['wall_s']:.1f}" if r.get("wall_s") else "–"
        lines.append(f"| {r['case']} | {cfg} | {r['compile_s']:.2f} | {r['run_s']:.2f} | {wall} | "
                     f"{r['steps_per_s'] / 1e3:,.0f}k | {fr} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", help="run one case in this process")
    parser.add_argument("--ceiling", type=int, help="run the no-learning ceiling with this many envs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if args.case or args.ceiling:
        result = run_case(args.case) if args.case else run_ceiling(args.ceiling)
        print(json.dumps(result))
        return
    rows = []
    for name in CASES:
        rows.append(child(["--case", name]))
        print(json.dumps(rows[-1]), flush=True)
    for n in (4, 2048):
        rows.append(child(["--ceiling", str(n)]))
        print(json.dumps(rows[-1]), flush=True)
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "warm"):
            rows.append(whole_process(cache, label))
            print(json.dumps(rows[-1]), flush=True)
    write_results(rows, machine(), Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
