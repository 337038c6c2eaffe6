"""jaxrl's headline benchmarks at accelerator-sized configs -> benchmarks/results/gpu.md.

    python benchmarks/gpu.py                  # on one accelerator: under 8 minutes in all
    python benchmarks/gpu.py --scale tiny     # the same cases, tiny, to check the script on a CPU (prints only)

Cases, each one `jaxrl` command in a fresh process (checkpoints at the default cadence, no persistent
compilation cache), figures from its summary.json plus the whole-process wall time:
  - PPO CartPole, one run of 2048 envs x 64 steps, 5e7 env steps
  - PPO CartPole, PureJaxRL's config (4 envs x 128 steps, 5e5 steps), 64 seeds in one program
  - a 1024-run sweep: 256 learning rates (log-uniform 1e-4..1e-2) x 4 seeds of the default PPO CartPole
    config (2.5e5 steps each), one compiled program
  - IPPO MPE simple_spread, JaxMARL's config with 1024 envs, 5e7 env steps
A case that runs past its share of the time (--case-timeout) is reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from common import machine, provenance, write_results
from peers import PUREJAXRL_CARTPOLE, run_jaxrl, set_args

HERE = Path(__file__).resolve().parent
JAXRL = [sys.executable, "-m", "jaxrl.cli"]


# Sizes per scale: envs of the single PPO run and its env steps, seeds of PureJaxRL's config and its env
# steps per seed, sweep points x seeds and env steps per run, IPPO envs and env steps.
SCALES = {
    "gpu": dict(ppo_envs=2048, ppo_steps=50_000_000, seeds=64, seed_steps=500_000, points=256, point_seeds=4,
                run_steps=250_000, ippo_envs=1024, ippo_steps=50_000_000),
    "tiny": dict(ppo_envs=16, ppo_steps=20_000, seeds=2, seed_steps=20_000, points=4, point_seeds=2,
                 run_steps=5_000, ippo_envs=8, ippo_steps=4_096),
}


def cases(scale: str, work: Path) -> list[tuple[str, list[str]]]:
    """(name, jaxrl command) of every case at the scale asked for."""
    z = SCALES[scale]
    sweep = {"name": "gpu-lr-seed", "algo": "ppo", "env": "gymnax:CartPole-v1",
             "base": {"total_timesteps": z["run_steps"]}, "method": "random", "num_points": z["points"],
             "seeds": z["point_seeds"], "max_parallel": 1024,
             "space": {"lr": {"dist": "log_uniform", "low": 1e-4, "high": 1e-2}}}
    spec = work / "sweep.yaml"
    spec.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return [
        (f"PPO CartPole, 1 run of {z['ppo_envs']} envs x 64 steps, {z['ppo_steps']:,} steps",
         [*JAXRL, "train", "--set", f"num_envs={z['ppo_envs']}", "--total-timesteps", str(z["ppo_steps"]),
          "--eval-episodes", "0"]),
        (f"PPO CartPole, PureJaxRL's config, {z['seeds']} seeds in one program, {z['seed_steps']:,} steps each",
         [*JAXRL, "train", *set_args(dict(PUREJAXRL_CARTPOLE, total_timesteps=z["seed_steps"])),
          "--seeds", str(z["seeds"]), "--eval-episodes", "0"]),
        (f"sweep of {z['points'] * z['point_seeds']} runs ({z['points']} lr x {z['point_seeds']} seeds) of the "
         f"default PPO CartPole config, {z['run_steps']:,} steps each", [*JAXRL, "sweep", str(spec)]),
        (f"IPPO MPE simple_spread, {z['ippo_envs']} envs x 128 steps, {z['ippo_steps']:,} steps",
         [*JAXRL, "train", "--algo", "ippo", "--env", "jaxmarl:MPE_simple_spread_v3",
          "--set", f"num_envs={z['ippo_envs']}", "--total-timesteps", str(z["ippo_steps"]), "--eval-episodes", "0"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=tuple(SCALES), default="gpu")
    parser.add_argument("--case-timeout", type=float, default=110, help="seconds per case (default 110)")
    parser.add_argument("--out", help="results file (default: benchmarks/results/gpu.md; --scale tiny: none)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxrl-gpu-bench-") as tmp:
        for i, (name, cmd) in enumerate(cases(args.scale, Path(tmp))):
            try:
                r = run_jaxrl(cmd, Path(tmp) / f"case{i}", args.case_timeout)
                rows.append(f"| {name} | {r['compile_s']:.1f} | {r['run_s']:.1f} | {r['steps_per_second'] / 1e3:,.0f}k | "
                            f"{r['wall_s']:.1f} | {r['final_return']:.1f} |")
            except subprocess.TimeoutExpired:
                rows.append(f"| {name} | timed out after {args.case_timeout:.0f} s | | | | |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# jaxrl at accelerator-sized configs", "",
        *provenance(" ".join(["gpu.py", *sys.argv[1:]]), machine()), "",
        "Each case is one `jaxrl` command in a fresh process (checkpoints at the default cadence, compiled from "
        "scratch). Final return: mean return of the training episodes finished in the last 5% of updates "
        "(mean over seeds; for the sweep, over its runs).", "",
        "| case | compile s | run s | env steps/s | whole process s | final return |",
        "|---|---|---|---|---|---|", *rows]) + "\n"
    write_results(text, args.out or (None if args.scale == "tiny" else HERE / "results" / "gpu.md"))


if __name__ == "__main__":
    main()
