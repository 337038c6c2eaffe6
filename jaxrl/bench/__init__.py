"""Benchmark suites: algorithms x environments x seeds, one compiled program per (algorithm config, env).

Each group's seeds train vmapped in one program through the trainer (jaxrl.trainer), which leaves a
full run directory per group (`jaxrl eval` and `jaxrl resume` work on it); the bench directory adds
the scores of every run, normalised by reference scores, and aggregate statistics over them:

    suite.yaml     the suite, every default filled in
    metadata.json  versions, git commit, device, command, times, status
    scores.csv     algo,env,seed,final_return,normalized_score,status,run_dir (one row per run)
    summary.json   compilations, times, env steps, and per algorithm IQM/mean/median/optimality gap
                   of normalised scores with 95% stratified bootstrap intervals (jaxrl.stats)
    runs/<name>-<env>/  one run directory per group

A stopped bench continues with `jaxrl resume BENCH_DIR`: finished groups are kept, a stopped group
continues from its last checkpoint, the rest run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxrl import devices as devices_
from jaxrl import records, stats
from jaxrl.bench.suite import Suite, load_references, load_suite, parse_suite
from jaxrl.errors import Preempted
from jaxrl.progress import Progress
from jaxrl.sweep.ranking import round_metric

SCORE_COLUMNS = ("algo", "env", "seed", "final_return", "normalized_score", "status", "run_dir")


@dataclass
class BenchResult:
    bench_dir: Path
    scores: list[dict]  # scores.csv rows, one per run
    summary: dict
    suite: Suite


def is_bench_dir(path: str | Path) -> bool:
    return (Path(path) / "suite.yaml").is_file() and (Path(path) / "metadata.json").is_file()


class BenchRecord(records.Record):
    def __init__(self, path: Path, suite: Suite):
        self.path = Path(path)
        self.write_yaml("suite.yaml", suite.resolved)
        super().__init__(path, kind="bench")

    def write_scores(self, rows: list[dict]) -> None:
        if rows:
            records.write_csv(self.path / "scores.csv", rows)


def run_bench(suite: str | Path | dict | Suite, out: str | None = None, progress: bool | str = True,
              devices: int | None = None) -> BenchResult:
    """Run a suite (a shipped name such as "classic", a YAML path, a mapping) into a new bench directory
    (`out`, default benches/bench-<name>-<time>)."""
    wall_start = time.perf_counter()
    suite = suite if isinstance(suite, Suite) else load_suite(suite)  # every error before compiling
    bench_dir = records.new_run_dir(out, "bench", suite.name, root="benches")
    rec = BenchRecord(bench_dir, suite) if devices_.is_main() else None
    return _run_groups(suite, bench_dir, rec, progress, devices, wall_start)


def resume_bench(bench_dir: str | Path, progress: bool | str = True, devices: int | None = None) -> BenchResult:
    """Continue a stopped or killed bench: finished groups are kept, a group stopped after a checkpoint
    continues from it, one stopped before its first checkpoint starts again."""
    wall_start = time.perf_counter()
    bench_dir = Path(bench_dir)
    records.unfinished(bench_dir, "bench")
    from jaxrl.config import load_yaml

    suite = parse_suite(load_yaml(bench_dir / "suite.yaml", "suite"), f"suite {str(bench_dir / 'suite.yaml')!r}")
    rec = BenchRecord.reopen(bench_dir) if devices_.is_main() else None
    return _run_groups(suite, bench_dir, rec, progress, devices, wall_start)


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file() and records.run_status(run_dir) == "finished"


class _GroupProgress(Progress):
    """One group's run on the bench's single display: the trainer drives it as it drives its own bar."""

    def __init__(self, bench: Progress, label: str, steps_before: int, num_seeds: int):
        self.bench, self.label, self.steps_before, self.num_seeds = bench, label, steps_before, num_seeds

    def compiling(self, what: str) -> None:
        self.bench.message(f"{self.label}: compiling ({what}) ...")

    def compiled(self, seconds: float) -> None:
        self.bench.message(f"{self.label}: compiled in {seconds:.1f} s")
        self.bench.open()

    def chunk(self, env_steps: int, steps_per_s: float, ret: float) -> None:
        shown = "no episode finished" if math.isnan(ret) else f"return {ret:.1f}"
        self.bench.update(self.steps_before + env_steps * self.num_seeds,
                          f"{self.label}, {steps_per_s / 1e3:,.0f}k steps/s, {shown}")

    def close(self) -> None:
        pass  # the bench's display outlives its groups


def _run_groups(suite: Suite, bench_dir: Path, rec: BenchRecord | None, progress, devices,
                wall_start: float) -> BenchResult:
    """Every group not finished yet through the trainer; only the process holding `rec` (process 0)
    writes the bench directory."""
    from jaxrl import checkpoint, trainer

    groups = suite.groups
    run_dirs = [bench_dir / "runs" / g.dir_name for g in groups]
    kept = [i for i, d in enumerate(run_dirs) if _finished(d)]
    todo = [i for i in range(len(groups)) if i not in kept]
    group_steps = [g.program.num_updates * g.program.steps_per_update * suite.seeds for g in groups]
    total = sum(group_steps[i] for i in todo)
    bar = Progress(max(total, 1), progress, desc="bench")
    note = f"; {len(kept)} finished group(s) kept" if kept else ""
    bar.message(f"bench {suite.name}: {len(groups)} groups (algorithm x env) x {suite.seeds} seeds = "
                f"{len(groups) * suite.seeds} runs in {len(todo)} compilation(s), {total:,} env steps to run{note}")
    references = load_references()
    summaries = {i: json.loads((run_dirs[i] / "summary.json").read_text()) for i in kept}
    timing = {"compile_s": 0.0, "run_s": 0.0, "env_steps": 0}
    done_steps = 0
    with records.RunLock(bench_dir) if rec else nullcontext(), records.failures(rec), bar:
        for n, i in enumerate(todo, 1):
            group, run_dir = groups[i], run_dirs[i]
            view = _GroupProgress(bar, f"group {n}/{len(todo)} {group.name} on {group.env}", done_steps, suite.seeds)
            try:
                if checkpoint.steps(run_dir / "checkpoints"):
                    result = trainer.resume(run_dir, progress=view, eval_episodes=0, devices=devices)
                else:
                    if run_dir.exists():  # stopped before its first checkpoint: nothing to continue from
                        shutil.rmtree(run_dir)
                    result = trainer.train(group.config, out=str(run_dir), progress=view, eval_episodes=0,
                                           devices=devices)
            except Preempted as err:  # the group's message names the group's directory; the bench continues too
                raise Preempted(f"{err}; continue the whole bench with: jaxrl resume {bench_dir}", err.signum) from None
            s = summaries[i] = result.summary
            timing["compile_s"] += s["compile_s"]
            timing["run_s"] += s["run_s"]
            updates_run = group.program.num_updates - s.get("resumed_from_update", 0)
            timing["env_steps"] += updates_run * group.program.steps_per_update * suite.seeds
            done_steps += group_steps[i]
            if rec:  # every finished group is on disk before the next starts
                rec.write_scores(_scores(suite, summaries, references))
        scores = _scores(suite, summaries, references)
        summary = {
            "name": suite.name, "groups": len(groups), "seeds": suite.seeds, "runs": len(scores),
            "compilations": len(todo), "kept_groups": len(kept),
            "compile_s": round(timing["compile_s"], 3), "run_s": round(timing["run_s"], 3),
            "wall_s": round(time.perf_counter() - wall_start, 3), "env_steps": timing["env_steps"],
            "steps_per_second": round(timing["env_steps"] / max(timing["run_s"], 1e-9)),
            "algos": aggregate(scores, references),
        }
        if rec:
            rec.write_json("summary.json", summary)
            rec.finish("finished")
    return BenchResult(bench_dir, scores, summary, suite)


def _scores(suite: Suite, summaries: dict[int, dict], references: dict) -> list[dict]:
    """scores.csv rows of the groups that have finished, in suite order."""
    rows = []
    for i, group in enumerate(suite.groups):
        if i not in summaries:
            continue
        s = summaries[i]
        final = np.array([np.nan if v is None else v for v in s["final_return_per_seed"]], np.float64)
        ref = references.get(group.env)
        norm = stats.normalize(final[:, None], [ref["random"]], [ref["reference"]])[:, 0] if ref \
            else np.full_like(final, np.nan)
        diverged = {int(seed) for seed in s["diverged"]}  # JSON keys are strings
        rows += [{"algo": group.name, "env": group.env, "seed": int(seed), "final_return": round_metric(f),
                  "normalized_score": round_metric(x), "status": "diverged" if seed in diverged else "finished",
                  "run_dir": f"runs/{group.dir_name}"} for seed, f, x in zip(s["seeds"], final, norm)]
    return rows


def aggregate(scores: list[dict], references: dict, reps: int = 2000, seed: int = 0) -> dict:
    """Per algorithm: mean final return and normalised score per env, and the IQM, mean, median and
    optimality gap of normalised scores [seeds x envs with a reference] with 95% stratified bootstrap
    intervals. A run without a score (diverged, or no episode finished) leaves its algorithm without
    aggregates, said in `aggregate_error`."""
    number = lambda v: np.nan if v == "" else float(v)
    out = {}
    for algo in dict.fromkeys(r["algo"] for r in scores):
        rows = [r for r in scores if r["algo"] == algo]
        envs = list(dict.fromkeys(r["env"] for r in rows))
        column = lambda env, key: [number(r[key]) for r in rows if r["env"] == env]
        entry = {"envs": {env: {"final_return_mean": round_metric(stats.nanmean(column(env, "final_return"))),
                                "normalized_mean": round_metric(stats.nanmean(column(env, "normalized_score")))}
                          for env in envs}}
        tasks = [env for env in envs if env in references]
        matrix = np.array([column(env, "normalized_score") for env in tasks]).T  # [seeds, tasks]
        if not tasks:
            entry["aggregate_error"] = "no env of this algorithm has a reference score"
        elif not np.isfinite(matrix).all():
            entry["aggregate_error"] = "a run has no score (diverged, or no episode finished)"
        else:
            estimates = stats.interval_estimates({algo: matrix}, reps=reps, seed=seed)[algo]
            entry["tasks"] = tasks
            entry.update({name: {"point": round(e.point, 4), "low": round(e.low, 4), "high": round(e.high, 4)}
                          for name, e in estimates.items()})
        out[algo] = entry
    return out
