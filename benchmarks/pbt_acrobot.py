"""PBT vs the best fixed point of an equal-compute random sweep: PPO on Acrobot with a constant learning rate.

    python benchmarks/pbt_acrobot.py            # writes benchmarks/PBT_RESULTS.md

PBT: `benchmarks/pbt_acrobot.yaml`, 3 independent populations x 16 members,
exploring lr (log-uniform 1e-4..1e-1 at the start) every 10 updates.
Equal compute: a random sweep of 16 points from the same space x 3 seeds
(48 runs of the same length), with the same constant learning rate (the fixed
counterpart of what PBT adapts) and, for reference, with PPO's usual linear
annealing of the learning rate to 0.
Scores are final returns (training episodes in the last 5% of updates):
PBT's best member of each population vs the sweep's best point (mean over
its 3 seeds) and, the stronger baseline, the best point of each seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE / "pbt_acrobot.yaml"


def sweep_case(base_spec: dict, anneal: bool) -> dict:
    from jaxrl.sweep import run as sweep_run

    sw = {k: v for k, v in base_spec.items() if k != "pbt"}
    sw.update(num_points=base_spec["pbt"]["population"], base={**base_spec["base"], "anneal_lr": anneal})
    start = time.perf_counter()
    result = sweep_run.run_sweep(sw, record=False, progress=False)
    wall = time.perf_counter() - start
    seeds = sorted({r["seed"] for r in result.runs})
    per_seed_best = [max(r["final_return"] for r in result.runs if r["seed"] == s and r["final_return"] != "")
                     for s in seeds]
    best = result.ranking[0]
    return {"case": f"random sweep, {'annealed' if anneal else 'constant'} lr", "best_point_lr": best["lr"],
            "best_point_mean": best["score"], "best_point_ci": [best["ci_low"], best["ci_high"]],
            "per_seed_best": per_seed_best, "per_seed_best_mean": float(np.mean(per_seed_best)),
            "population_mean": float(np.mean([r["final_return"] for r in result.runs if r["final_return"] != ""])),
            "compile_s": result.summary["compile_s"], "run_s": result.summary["run_s"], "wall_s": wall}


def pbt_case() -> dict:
    from jaxrl import pbt

    start = time.perf_counter()
    result = pbt.run_pbt(str(SPEC), record=False, progress=False)
    wall = time.perf_counter() - start
    s = result.summary
    return {"case": "PBT (lr explored)", "per_seed_best": s["best_final_return_per_population"],
            "per_seed_best_mean": s["best_final_return_mean"], "population_mean": s["population_final_return_mean"],
            "final_lr": [h["lr"] for h in s["best_member_final_hparams"]],
            "compile_s": s["compile_s"], "run_s": s["run_s"], "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "PBT_RESULTS.md"))
    args = parser.parse_args()
    from jaxrl.config import load_yaml

    spec = load_yaml(SPEC)
    rows = [pbt_case(), sweep_case(spec, anneal=False), sweep_case(spec, anneal=True)]
    for r in rows:
        print(json.dumps(r), flush=True)
    from common import machine, provenance

    info = machine()
    fmt = lambda xs: ", ".join(f"{x:.1f}" for x in xs)
    lines = [
        "# PBT vs an equal-compute random sweep (PPO, Acrobot-v1, constant learning rate)",
        "",
        *provenance("pbt_acrobot.py", info),
        "",
        "Task: gymnax Acrobot-v1 (return = -steps to swing up, -500 if never; higher is better), PPO defaults",
        "(8 envs x 64 steps) for 2e5 env steps per member, lr not annealed. A constant learning rate must trade",
        "fast early progress (large lr) against stable late refinement (small lr); PBT adapts it during training.",
        "PBT: 3 populations x 16 members, exploit/explore every 10 updates (5,120 env steps), bottom 25% copy the",
        "top 25%, lr x 0.8 or 1.2. Sweep: 16 lr points (log-uniform 1e-4..1e-1) x 3 seeds = the same 48 runs of",
        "compute. Final return = mean return of training episodes in the last 5% of updates.",
        "",
        "| case | best per seed/population | mean of those | best point: mean over seeds [95% CI] | "
        "all runs: mean | compile s | run s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        point = (f"{r['best_point_mean']:.1f} [{r['best_point_ci'][0]:.1f}, {r['best_point_ci'][1]:.1f}] "
                 f"(lr {r['best_point_lr']:.2g})" if "best_point_mean" in r else "–")
        lines.append(f"| {r['case']} | {fmt(r['per_seed_best'])} | **{r['per_seed_best_mean']:.1f}** | {point} | "
                     f"{r['population_mean']:.1f} | {r['compile_s']:.1f} | {r['run_s']:.1f} |")
    p, fixed = rows[0], rows[1]
    lines += ["", f"PBT's best members end with lr {', '.join(f'{x:.2g}' for x in p['final_lr'])}.",
              f"PBT minus the constant-lr sweep: {p['per_seed_best_mean'] - fixed['best_point_mean']:+.1f} against "
              f"its best point, {p['per_seed_best_mean'] - fixed['per_seed_best_mean']:+.1f} against the best "
              f"point of each seed."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
