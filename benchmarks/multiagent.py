"""Multi-agent benchmarks -> benchmarks/MULTIAGENT_RESULTS.md.

- IPPO and MAPPO on jaxmarl:MPE_simple_spread_v3 with JaxMARL's IPPO baseline config
  (16 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4, 1e7 env steps, 1 seed), beside
  JaxMARL's own IPPO figures on this class of machine (63k env steps/s, return -60.9).
- Self-play on jaxrl:connect4 with a population of 8 policies (selfplay=population).

Usage: python benchmarks/multiagent.py [--quick]   (--quick: 1e6 steps per case)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import machine, provenance

from jaxrl import api
from jaxrl.config import to_dict

JAXMARL_IPPO = {"steps_per_s": 63_000, "return": -60.9}  # JaxMARL IPPO baseline, 1e7 steps, same class of CPU


def case(algo: str, total: float, **overrides) -> dict:
    config = api.resolve_config(algo, None, {"total_timesteps": int(total), **overrides})
    result = api.train(config, record=False, progress=True, eval_episodes=0)
    s = result.summary
    shown = {k: v for k, v in to_dict(config).items() if k in overrides or k in (
        "num_envs", "num_steps", "update_epochs", "num_minibatches", "lr", "total_timesteps")}
    return {"algo": algo, "env": config.env, "config": shown, "compile_s": s["compile_s"], "run_s": s["run_s"],
            "steps_per_s": s["steps_per_second"], "return": s["final_return_mean"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e6 env steps per case")
    args = parser.parse_args()
    steps = 1e6 if args.quick else 1e7
    info = machine()
    rows = [case("ippo", steps), case("mappo", steps),
            case("ippo", steps / 2, env="jaxrl:connect4", selfplay="population", population_size=8,
                 num_envs=128, num_steps=32, opponent_groups=2)]
    lines = ["# Multi-agent training", ""] + provenance("multiagent.py" + (" --quick" if args.quick else ""), info) + [
        "",
        "Compile = ahead-of-time compilation of the init and chunk programs; run = the compiled training;",
        "env steps/s = env steps / run s (one env step moves every agent of the env); return = training",
        "episodes of the last 5% of updates: the team return summed over agents on MPE (JaxMARL's",
        "convention), the learner's game result (+1 win, -1 loss) on connect-four.",
        "",
        "| case | config | compile s | run s | env steps/s | return |",
        "|---|---|---|---|---|---|",
        f"| JaxMARL IPPO baseline (reference, not re-run) | 16 envs x 128 steps, 1e7 steps | 12.6 | 159 | "
        f"{JAXMARL_IPPO['steps_per_s'] / 1e3:.0f}k | {JAXMARL_IPPO['return']} |",
    ]
    for r in rows:
        config = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {r['algo']} on {r['env']} | {config} | {r['compile_s']:.1f} | {r['run_s']:.1f} | "
                     f"{r['steps_per_s'] / 1e3:.0f}k | {r['return']} |")
    ippo = rows[0]
    lines += ["", f"IPPO runs at {ippo['steps_per_s'] / JAXMARL_IPPO['steps_per_s']:.2f}x JaxMARL's IPPO env steps/s "
                  f"(reference figure from the same class of 2-core CPU, not measured side by side)."]
    out = Path(__file__).with_name("MULTIAGENT_RESULTS.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
