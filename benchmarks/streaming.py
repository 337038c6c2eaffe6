"""Streaming learners (stream_ac, stream_q) on gymnax CartPole-v1: compile time, run time and aggregate env steps/s
of 1 and 16 vmapped learners (each learner one env, one update per env step), and the mean return of each learner's
last 20 episodes.

    python benchmarks/streaming.py --out benchmarks/results/streaming-cpu.md

Every case is compiled ahead of time (its compile time apart from its run time) at the reference defaults
(jaxrl/algos/stream_ac.py, stream_q.py), 1e5 env steps per learner.
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np

from common import machine, provenance, write_results

STEPS = 100_000
CASES = [("stream_ac", 1), ("stream_ac", 16), ("stream_q", 1), ("stream_q", 16)]


def run_case(algo: str, learners: int) -> dict:
    from jaxrl import api, loop, records
    from jaxrl.algos import get
    from jaxrl.config import hparams

    config = api.resolve_config(algo, overrides=dict(env="gymnax:CartPole-v1", total_timesteps=STEPS,
                                                     num_seeds=learners))
    program = get(algo).make_program(config)
    load = os.getloadavg()[0]  # the machine is shared: how busy it was as the case started
    keys = jax.vmap(jax.random.PRNGKey)(jax.numpy.arange(config.seed, config.seed + learners))
    _, metrics, _, timings = loop.run(program, keys, hparams(config))
    last = records.last_episodes_returns(metrics)
    return {"algo": algo, "learners": learners, "compile_s": timings["compile_s"], "run_s": timings["run_s"],
            "steps_per_s": STEPS * learners / timings["run_s"], "last20_median": float(np.median(last)),
            "last20_min": float(last.min()), "load": load}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the results table (markdown) here")
    args = parser.parse_args()
    rows = []
    for algo, learners in CASES:
        rows.append(run_case(algo, learners))
        print(rows[-1], flush=True)
    info = machine()
    lines = ["# Streaming learners on CartPole-v1", "", *provenance("streaming.py", info), "",
             f"{STEPS:,} env steps per learner, reference defaults. The machine was shared with other jobs (load "
             f"average at the start of each case in the last column, {os.cpu_count()} cores), so the times are upper "
             "bounds.", "",
             "| algorithm | learners | compile s | run s | env steps/s (all learners) | last-20 return: median | min "
             "| load |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['algo']} | {r['learners']} | {r['compile_s']:.1f} | {r['run_s']:.1f} | {r['steps_per_s']:,.0f} | "
              f"{r['last20_median']:.1f} | {r['last20_min']:.1f} | {r['load']:.1f} |" for r in rows]
    write_results("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
