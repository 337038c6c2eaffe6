"""Steps per second against the number of devices: one run (envs split over the devices, data
parallel) and a sweep (runs split over the devices), on forced CPU devices, plus one run over two
processes. Writes SCALING_RESULTS.md and scaling.png beside this file.

    python benchmarks/scaling.py            # all cases, each in a fresh process
    python benchmarks/scaling.py --quick    # shorter runs

Each case runs in its own process with XLA_FLAGS=--xla_force_host_platform_device_count=N and
no compilation cache; compile time (init + chunk, ahead of time) is reported apart from run time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

# One run: enough envs that each of 4 devices holds 16 (CartPole, PPO defaults otherwise).
SINGLE = dict(num_envs=64, num_steps=64, num_minibatches=4, update_epochs=4)
# A sweep: 32 runs of the default config (lr varied), as in SWEEP_RESULTS.md.
SWEEP = {"algo": "ppo", "env": "gymnax:CartPole-v1", "name": "scaling", "method": "random", "num_points": 16,
         "seeds": 2, "max_parallel": 32, "space": {"lr": {"dist": "log_uniform", "low": 3e-4, "high": 3e-3}}}
DEVICES = (1, 2, 4)

NOTES = """## Reading the figures

- Forced CPU devices share the machine's cores: they measure how well the program partitions, not
  new hardware. On a 2-core machine 2 devices is the most that can run at once; 4 oversubscribe.
- **Sweep (runs split)**: runs never communicate, so each device trains its runs alone. One
  process of 32 vmapped runs leaves part of the second core idle; splitting the runs over 2 devices
  keeps both cores busy. On N real accelerators this layout scales with N (each device holds
  runs/N, the only traffic is the per-chunk metrics), until the per-device block is too small to
  fill a device.
- **One run (envs split)**: every minibatch ends in an all-reduce of the gradients (16 per update
  here), a synchronisation point that costs more than the work it shares when each device holds
  a few CartPole envs on a CPU, whose one device already uses both cores for the larger ops. On
  GPUs the all-reduce of PPO's ~10k parameters over NVLink takes microseconds, so data parallelism
  pays once each device has thousands of envs to step (brax-sized batches); for small envs, give
  each device whole runs instead.
- **Two processes**: the same all-reduces cross processes over TCP (gloo): ~10x slower than one
  device. Across hosts prefer the runs layout (seeds or sweep points that divide over all devices);
  the envs layout across hosts wants a fast interconnect (NCCL over InfiniBand/NVLink on GPUs).
- Final returns differ a little between layouts: summation order changes the floats, and over
  hundreds of updates the runs drift apart (first-update losses agree to 1e-5, tests/test_devices.py).
"""


def worker(case: str, devices: int, steps: int) -> dict:
    """One measurement, in this process (the device count is fixed by XLA_FLAGS)."""
    from jaxrl import api
    from jaxrl.sweep import run as sweep_run

    if case == "single":
        config = api.resolve_config("ppo", overrides={**SINGLE, "total_timesteps": steps})
        result = api.train(config, record=False, progress=False, eval_episodes=0, devices=devices)
        s = result.summary
        return {"compile_s": s["compile_s"], "run_s": s["run_s"], "steps_per_second": s["steps_per_second"],
                "final_return": s["final_return_mean"], "layout": s["device_layout"]}
    spec = {**SWEEP, "base": {"total_timesteps": steps}}
    result = sweep_run.run_sweep(spec, record=False, progress=False, devices=devices)
    s = result.summary
    return {"compile_s": s["compile_s"], "run_s": s["run_s"], "steps_per_second": s["steps_per_second"],
            "final_return": s["best"]["final_return"], "layout": "runs" if devices > 1 else "single"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def measure(case: str, devices: int, steps: int, processes: int = 1) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices // processes}",
           "JAXRL_COMPILE_CACHE": "0"}
    command = [sys.executable, __file__, "--worker", case, str(devices), str(steps)]
    if processes == 1:
        out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    else:  # jax.distributed over local processes, collectives over gloo
        port = free_port()
        procs = [subprocess.Popen(command + ["--process", f"localhost:{port}", str(processes), str(i)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
                 for i in range(processes)]
        out = [p.communicate()[0] for p in procs][0]
    result = json.loads(out.strip().splitlines()[-1])
    print(f"{case:<7} {devices} device(s), {processes} process(es): {result}", file=sys.stderr)
    return {"case": case, "devices": devices, "processes": processes, **result}


def write_results(rows: list[dict], steps: dict, info: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from common import provenance

    fig, ax = plt.subplots(figsize=(6, 4))
    for case, label in (("single", "one run (envs split)"), ("sweep", "sweep of 32 runs (runs split)")):
        pts = [r for r in rows if r["case"] == case and r["processes"] == 1]
        ax.plot([r["devices"] for r in pts], [r["steps_per_second"] / 1e3 for r in pts], "o-", label=label)
    mp = [r for r in rows if r["processes"] > 1]
    for r in mp:
        ax.plot([r["devices"]], [r["steps_per_second"] / 1e3], "x", color="C3", markersize=9,
                label=f"one run, {r['processes']} processes x {r['devices'] // r['processes']} device(s)")
    ax.set_xlabel("forced CPU devices")
    ax.set_ylabel("env steps per second (thousands)")
    ax.set_xticks(DEVICES)
    ax.set_title(f"PPO CartPole, {info['cores']}-core CPU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "scaling.png", dpi=120)

    lines = ["# Scaling over devices and processes", "", *provenance("scaling.py", info), "",
             f"- **one run**: PPO on gymnax:CartPole-v1, {SINGLE['num_envs']} envs x {SINGLE['num_steps']} steps, "
             f"{SINGLE['update_epochs']} epochs x {SINGLE['num_minibatches']} minibatches, {steps['single']:,} steps;"
             " with N devices each holds num_envs/N envs (layout `envs`), gradients all-reduced.",
             f"- **sweep**: {SWEEP['num_points']} lr points x {SWEEP['seeds']} seeds = 32 runs of the default config, "
             f"{steps['sweep']:,} steps each, one block; with N devices each trains 32/N runs (layout `runs`).",
             "- Each row is a fresh process (fresh processes for the two-process row), no compilation cache.", "",
             "| case | processes x devices | layout | compile s | run s | steps/s | return |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['processes']} x {r['devices'] // r['processes']} | {r['layout']} | "
                     f"{r['compile_s']:.1f} | {r['run_s']:.1f} | {r['steps_per_second']:,} | {r['final_return']} |")
    lines += ["", "![scaling](scaling.png)", "", NOTES]
    (HERE / "SCALING_RESULTS.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "DEVICES", "STEPS"), help=argparse.SUPPRESS)
    parser.add_argument("--process", nargs=3, metavar=("COORDINATOR", "COUNT", "ID"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.process:
            from jaxrl import devices

            devices.initialize(args.process[0], int(args.process[1]), int(args.process[2]))
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))))
        return
    steps = {"single": 262_144 if args.quick else 1_048_576, "sweep": 65_536 if args.quick else 131_072}
    rows = [measure("single", d, steps["single"]) for d in DEVICES]
    rows += [measure("sweep", d, steps["sweep"]) for d in DEVICES]
    rows.append(measure("single", 2, steps["single"] // 4, processes=2))  # slow: gloo collectives between processes
    from common import machine

    write_results(rows, steps, machine())
    print((HERE / "SCALING_RESULTS.md").read_text())


if __name__ == "__main__":
    main()
