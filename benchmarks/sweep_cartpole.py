"""A 64-point x 2-seed PPO sweep on CartPole: one vmapped program vs 128 `jaxrl train` launches.

    python benchmarks/sweep_cartpole.py                      # everything, writes benchmarks/SWEEP_RESULTS.md
    python benchmarks/sweep_cartpole.py --sequential-runs 16 # time only the first 16 sequential runs

(a) `jaxrl sweep benchmarks/sweep_cartpole.yaml`: all 128 runs in one compiled
    program (one process, timed by this script around it).
(b) the same 128 runs (same configs and seeds) launched one after another as
    `jaxrl train --config point.yaml --seed s` processes, with the persistent
    compilation cache on (the default), so every launch after the first finds
    its program compiled already: the most favourable setting for (b).
(c) blocks: the same runs (shortened) in blocks of 8, 32 and 128 runs per
    compiled call.
(d) memory: peak resident memory of sweeps of N runs of the default config
    (short runs; memory does not grow with run length), and the largest N that
    fits in this machine's memory by a linear fit, with that N then run for real.
Every case runs in a fresh process with an empty compilation cache of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SPEC = HERE / "sweep_cartpole.yaml"


def jaxrl(args: list[str], cache: str) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, JAXRL_CACHE_DIR=cache)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jaxrl.cli", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"jaxrl {' '.join(args)} failed:\n{proc.stderr}")
    return wall, proc


def vmapped(work: Path) -> dict:
    out = work / "sweep"
    wall, _ = jaxrl(["sweep", str(SPEC), "--out", str(out), "--no-progress"], str(work / "cache-a"))
    s = json.loads((out / "summary.json").read_text())
    return {"case": "(a) one vmapped program (`jaxrl sweep`)", "runs": s["runs"], "compilations": s["compilations"],
            "compile_s": s["compile_s"], "run_s": s["run_s"], "wall_s": wall, "env_steps": s["env_steps"],
            "steps_per_s_run": s["steps_per_second"], "steps_per_s_wall": s["env_steps"] / wall,
            "best": s["best"], "sweep_dir": str(out)}


def sequential(work: Path, sweep_dir: Path, limit: int | None) -> dict:
    """The sweep's runs as separate `jaxrl train` processes (in run order, optionally only the first `limit`)."""
    from jaxrl.config import to_dict
    from jaxrl.sweep import spec as sweep_spec

    spec = sweep_spec.load_spec(SPEC)
    points = sweep_spec.sample_points(spec)
    runs = [(p, s) for p in range(len(points)) for s in range(spec.seeds)]
    timed = runs[:limit] if limit else runs
    walls, finals, steps = [], {}, 0
    for i, (p, s) in enumerate(timed):
        config = sweep_spec.point_config(spec, p, points[p])
        path = work / f"point{p}.yaml"
        path.write_text(yaml.safe_dump({"algo": spec.algo, **to_dict(config), "num_seeds": 1}, sort_keys=False))
        out = work / f"run{i}"
        wall, _ = jaxrl(["train", "--config", str(path), "--seed", str(spec.seed + s), "--out", str(out),
                         "--no-progress", "--eval-episodes", "0"], str(work / "cache-b"))
        summary = json.loads((out / "summary.json").read_text())
        finals[(p, s)] = summary["final_return_mean"]
        steps += summary["env_steps_per_seed"]
        walls.append(wall)
        print(f"  sequential run {i + 1}/{len(timed)}: {wall:.1f} s", file=sys.stderr, flush=True)
    total = sum(walls)
    scale = len(runs) / len(timed)
    return {"case": "(b) 128 `jaxrl train` processes, one after another", "runs": len(runs),
            "timed_runs": len(timed), "compilations": len(runs), "wall_s": total * scale,
            "wall_s_measured": total, "first_wall_s": walls[0], "env_steps": steps * scale,
            "steps_per_s_wall": steps / total, "finals": {f"{p},{s}": v for (p, s), v in finals.items()}}


def memory_child(num_runs: int) -> None:
    """Peak RSS of a sweep of `num_runs` points x 1 seed of the default config (1 update each)."""
    from jaxrl.sweep import run as sweep_run

    spec = {"algo": "ppo", "env": "gymnax:CartPole-v1", "base": {"total_timesteps": 512}, "seeds": 1,
            "num_points": num_runs, "max_parallel": num_runs,  # one block: all runs in memory at once
            "space": {"lr": {"dist": "log_uniform", "low": 1e-4, "high": 1e-2}}}
    start = time.perf_counter()
    result = sweep_run.run_sweep(spec, record=False, progress=False)
    print(json.dumps({"runs": num_runs, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "compile_s": result.summary["compile_s"], "run_s": result.summary["run_s"],
                      "wall_s": time.perf_counter() - start}))


def block_child(block: int) -> None:
    """Steps/s of the sweep's 128 runs (shortened to 5e4 env steps each) in blocks of `block` runs."""
    from jaxrl.config import load_yaml
    from jaxrl.sweep import run as sweep_run

    spec = load_yaml(SPEC)
    spec.update(base={"total_timesteps": 50_000}, max_parallel=block)
    result = sweep_run.run_sweep(spec, record=False, progress=False)
    print(json.dumps({"block": block, "compile_s": result.summary["compile_s"], "run_s": result.summary["run_s"],
                      "steps_per_s": result.summary["steps_per_second"]}))


def blocks(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, __file__, "--block-child", str(n)], capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(proc.stderr)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  block {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def memory(sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        proc = subprocess.run([sys.executable, __file__, "--memory-child", str(n)], capture_output=True, text=True)
        if proc.returncode:
            rows.append({"runs": n, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "killed"})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  memory {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_results(a: dict, b: dict, block_rows: list[dict], mem: list[dict], fit: dict, path: Path) -> None:
    from common import machine, provenance

    info = machine()
    speedup = b["wall_s"] / a["wall_s"]
    lines = [
        "# Sweep: one vmapped program vs sequential launches (PPO, CartPole)",
        "",
        *provenance("sweep_cartpole.py", info),
        "",
        "Spec: `benchmarks/sweep_cartpole.yaml`: 64 random points (lr log-uniform 1e-5..1e-1, ent_coef uniform",
        "0..0.05, clip_eps uniform 0.1..0.4) x 2 seeds = 128 runs of the default PPO config (8 envs x 64 steps,",
        "2.5e5 env steps each, 3.2e7 env steps in all). Wall = whole process(es) from launch to exit, timed by",
        "the script; compile and run are the sweep's own timers (ahead-of-time compilation, then the runs).",
        "(b) uses the persistent compilation cache, so only its first launch compiles from scratch.",
        "",
        "| case | runs | compilations | compile s | run s | wall s | env steps/s (wall) |",
        "|---|---|---|---|---|---|---|",
        f"| {a['case']} | {a['runs']} | {a['compilations']} | {a['compile_s']:.1f} | {a['run_s']:.1f} | "
        f"{a['wall_s']:.1f} | {a['steps_per_s_wall'] / 1e3:,.0f}k |",
        f"| {b['case']} | {b['runs']} | {b['compilations']} (1 cold, rest from cache) | – | – | "
        f"{b['wall_s']:.1f}{'' if b['timed_runs'] == b['runs'] else ' (extrapolated)'} | "
        f"{b['steps_per_s_wall'] / 1e3:,.0f}k |",
        "",
        f"Speed-up of (a) over (b), wall clock: **{speedup:.1f}x**. (a) trains at "
        f"{a['steps_per_s_run'] / 1e3:,.0f}k env steps/s inside the compiled program.",
    ]
    if b["timed_runs"] != b["runs"]:
        lines.append(f"(b) timed the first {b['timed_runs']} of {b['runs']} runs ({b['wall_s_measured']:.1f} s) "
                     f"and scaled to {b['runs']}.")
    lines += [f"First sequential launch (cold compile): {b['first_wall_s']:.1f} s; "
              f"mean of the others: {(b['wall_s_measured'] - b['first_wall_s']) / max(1, b['timed_runs'] - 1):.1f} s.",
              "",
              f"Best point of (a): {json.dumps({k: v for k, v in a['best'].items() if k != 'rank'})}.",
              "",
              "## Runs per compiled call (`max_parallel`)",
              "",
              "The same 128 runs shortened to 5e4 env steps each, in blocks of N runs that reuse one compilation.",
              "",
              "| runs per block | compile s | run s | env steps/s |",
              "|---|---|---|---|"]
    lines += [f"| {r['block']} | {r['compile_s']:.1f} | {r['run_s']:.1f} | {r['steps_per_s'] / 1e3:,.0f}k |"
              for r in block_rows]
    lines += ["",
              "## Memory",
              "",
              "Peak resident memory of one process running a sweep of N runs (default config, 1 update of 1 seed each, one",
              "block of N runs; memory does not grow with run length, metrics are fixed-size per chunk).",
              "",
              "| runs in one program | peak RSS MB | compile s | run s (1 update) |",
              "|---|---|---|---|"]
    for r in mem:
        if "error" in r:
            lines.append(f"| {r['runs']} | failed: {r['error']} | | |")
        else:
            lines.append(f"| {r['runs']:,} | {r['peak_rss_mb']:,.0f} | {r['compile_s']:.1f} | {r['run_s']:.1f} |")
    lines += ["", f"Linear fit: {fit['base_mb']:,.0f} MB + {fit['per_run_kb']:,.1f} kB per run. With "
                  f"{fit['available_mb']:,.0f} MB available, about **{fit['max_runs']:,} runs** of the default "
                  f"config fit in one program on this machine (`max_parallel` bounds a block below that; larger "
                  f"sweeps run in blocks)."]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential-runs", type=int, help="time only the first N sequential runs (then scale)")
    parser.add_argument("--memory-sizes", default="128,1024,4096,8192", help="runs per program for (d)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--block-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "SWEEP_RESULTS.md"))
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    if args.block_child:
        block_child(args.block_child)
        return
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="jaxrl-sweep-bench-") as tmp:
        work = Path(tmp)
        a = vmapped(work)
        print(json.dumps({k: v for k, v in a.items() if k != "best"}), flush=True)
        b = sequential(work, Path(a["sweep_dir"]), args.sequential_runs)
        print(json.dumps({k: v for k, v in b.items() if k != "finals"}), flush=True)
    block_rows = blocks([8, 32, 128])
    mem = memory([int(n) for n in args.memory_sizes.split(",")])
    ok = [r for r in mem if "error" not in r]
    slope, base = np.polyfit([r["runs"] for r in ok], [r["peak_rss_mb"] for r in ok], 1)
    avail = available_mb()
    fit = {"base_mb": base, "per_run_kb": slope * 1024, "available_mb": avail,
           "max_runs": int((0.9 * avail - base) / slope)}
    mem += memory([fit["max_runs"]])
    write_results(a, b, block_rows, mem, fit, Path(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
