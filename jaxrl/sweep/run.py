"""Running a sweep: every group of its plan through the Session, block by block, then its ranking and record."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxrl import plots, records
from jaxrl.config import ConfigError, format_value, stacked_hparams
from jaxrl.stats import nanmean
from jaxrl.sweep.plan import Plan, default_block_size, make_plan
from jaxrl.sweep.ranking import rank_points, read_run_row, run_row
from jaxrl.sweep.record import SweepRecord
from jaxrl.sweep.spec import SweepSpec, load_spec, parse_spec


@dataclass
class SweepResult:
    sweep_dir: Path | None
    runs: list[dict]  # one row per run (runs.csv)
    ranking: list[dict]  # one row per point, best first
    best_config: Any  # config of the best point (None if no point finished)
    summary: dict
    spec: SweepSpec


def run_sweep(spec: SweepSpec | dict | str | Path, out: str | None = None, progress: bool = True,
              allow_many_compiles: bool = False, record: bool = True, devices: int | None = None) -> SweepResult:
    """Run a sweep; with `record`, write a sweep directory (see README, "Sweeps").
    `devices`: devices sharing each block of runs (None: all; see jaxrl.devices)."""
    from jaxrl import devices as devices_

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    wall_start = time.perf_counter()
    plan = make_plan(spec, allow_many_compiles)
    devices_.count(devices)  # too many devices: an error before the sweep directory is made
    sweep_dir = records.new_run_dir(out, "sweep", spec.name, root="sweeps") if record else None
    rec = SweepRecord(sweep_dir, spec, plan.points) if record and devices_.is_main() else None
    return _run_groups(spec, plan, sweep_dir, rec, progress, devices, [], {}, wall_start)


def resume_sweep(sweep_dir: str | Path, progress: bool = True, devices: int | None = None) -> SweepResult:
    """Continue a stopped or killed sweep in its directory: groups whose curves are on disk are
    kept, the others run again from their start (a group's blocks are not checkpointed)."""
    from jaxrl import devices as devices_

    wall_start = time.perf_counter()
    sweep_dir = Path(sweep_dir)
    records.unfinished(sweep_dir, "sweep")
    spec = load_spec(sweep_dir / "spec.yaml")
    plan = make_plan(spec, allow_many_compiles=True)  # it was accepted when started
    written = yaml.safe_load((sweep_dir / "points.yaml").read_text())
    if [_fmt_point(p) for p in written] != [_fmt_point(p) for p in plan.points]:
        raise ConfigError(f"{str(sweep_dir / 'points.yaml')!r} does not match the points spec.yaml samples "
                          f"(was spec.yaml edited, or jaxrl changed?); start a new sweep instead")
    curves = dict(np.load(sweep_dir / "curves.npz")) if (sweep_dir / "curves.npz").is_file() else {}
    finished = {g for g in range(len(plan.groups)) if f"group{g}_returns" in curves}
    rows = records.read_metrics(sweep_dir / "runs.csv") if (sweep_dir / "runs.csv").is_file() else []
    kept = [read_run_row(r, plan.points) for r in rows if int(r["group"]) in finished]
    curves = {k: v for k, v in curves.items() if int(k[len("group"):].split("_")[0]) in finished}
    rec = SweepRecord.reopen(sweep_dir, kept_groups=sorted(finished)) if devices_.is_main() else None
    return _run_groups(spec, plan, sweep_dir, rec, progress, devices, kept, curves, wall_start)


def _fmt_point(point: dict) -> dict:
    """A point's values as comparable strings (points.yaml holds tuples as lists)."""
    return {k: format_value(tuple(v) if isinstance(v, list) else v) for k, v in point.items()}


def _run_groups(spec: SweepSpec, plan: Plan, sweep_dir, rec, progress, devices, runs: list[dict], curves: dict,
                wall_start: float) -> SweepResult:
    """Run every group not already in `curves` (a resumed sweep's finished groups), then rank and record."""
    import jax
    import jax.numpy as jnp

    from jaxrl import devices as devices_
    from jaxrl import loop
    from jaxrl.progress import Progress
    from jaxrl.session import Session

    points, configs, groups, programs = plan.points, plan.configs, plan.groups, plan.programs
    resumed_groups = sorted({r["group"] for r in runs})
    todo = [g for g in range(len(groups)) if g not in resumed_groups]
    total_steps = sum(len(groups[g]) * spec.seeds * programs[g].num_updates * programs[g].steps_per_update
                      for g in todo)
    num_runs = len(points) * spec.seeds
    bar = Progress(total_steps, progress, desc="sweep")
    kept = f"; {len(resumed_groups)} finished group(s) kept" if resumed_groups else ""
    bar.message(f"sweep {spec.name}: {len(points)} points x {spec.seeds} seeds = {num_runs} runs in "
                f"{len(groups)} compiled group(s), {total_steps:,} env steps to run{kept}")
    timing = {"compile_s": 0.0, "run_s": 0.0, "compiles": 0, "steps_done": 0}
    best = {"value": -math.inf}
    with records.failures(rec), bar:
        for g in todo:
            indices, program = groups[g], programs[g]
            members = [(p, s) for p in indices for s in range(spec.seeds)]
            num_blocks = -(-len(members) // (spec.max_parallel or default_block_size()))
            block = -(-len(members) // num_blocks)  # balanced blocks: the least padding
            layout = devices_.plan(devices, block, program.env_shards, round_runs=True)
            block = -(-block // layout.num_devices) * layout.num_devices if layout.mode == "runs" else block
            compiled = None
            group_rows, group_curves = [], []
            for start in range(0, len(members), block):
                real = members[start:start + block]
                # Same shape for every block (one compilation), padded with the block's own runs from its
                # start, so that the keys keep the first block's pattern (loop.key_pattern).
                padded = real + [real[i % len(real)] for i in range(block - len(real))]
                keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray([spec.seed + s for _, s in padded]))
                hp = stacked_hparams([configs[p] for p, _ in padded])
                session = Session(program, keys, hp, layout, compiled=compiled,
                                  resume_hint=f"jaxrl resume {sweep_dir}" if sweep_dir else None)
                if compiled is None:
                    loop.check_memory(program, keys, hp, layout.num_devices)
                    bar.message(f"compiling group {g + 1}/{len(groups)} ({len(members)} runs, {block} at a time) ...")
                    with session:
                        compiled = session.compile()
                    timing["compiles"] += 1
                    timing["compile_s"] += compiled.seconds
                    bar.message(f"  compiled in {compiled.seconds:.1f} s")
                    bar.open()
                done_before = timing["steps_done"]

                def on_chunk(report, real=real, done_before=done_before):
                    rets = records.final_returns(report.metrics, fraction=1.0)[:len(real)]
                    if np.any(np.isfinite(rets)):
                        best["value"] = max(best["value"], float(np.nanmax(rets)))
                    steps = done_before + report.env_steps * len(real)
                    sps = report.env_steps * len(real) / max(report.run_seconds, 1e-9)
                    finished = len(runs) + len(group_rows)
                    bar.update(steps, f"runs {finished}/{num_runs}, {sps / 1e3:,.0f}k steps/s, "
                                      f"best {best['value']:.1f}")

                with session:
                    outcome = session.run(on_chunk)
                metrics, diverged_at, timings = outcome.metrics, outcome.diverged_at, outcome.timings
                timing["run_s"] += timings["run_s"]
                timing["steps_done"] += program.num_updates * program.steps_per_update * len(real)
                metrics = {k: v[:len(real)] for k, v in metrics.items()}
                final = records.final_returns(metrics)
                per_update = records.mean_returns(metrics)
                auc = nanmean(per_update, axis=1)
                group_rows += [run_row(spec, p, s, g, points[p], final[r], auc[r], int(diverged_at[r]))
                               for r, (p, s) in enumerate(real)]
                group_curves.append(per_update.astype(np.float32))
                if rec:  # every finished block is on disk before the next starts
                    rec.write_runs(sorted(runs + group_rows, key=lambda r: r["run"]))
            runs.extend(group_rows)
            curves[f"group{g}_env_steps"] = loop.logged_updates(program) * program.steps_per_update
            curves[f"group{g}_runs"] = np.asarray([r["run"] for r in group_rows])
            curves[f"group{g}_returns"] = np.concatenate(group_curves)
            if rec:
                rec.write_curves(curves)

    runs.sort(key=lambda r: r["run"])
    if rec:
        rec.write_runs(runs)
    ranking = rank_points(spec, points, runs)
    best_config = configs[ranking[0]["point"]] if ranking else None
    summary = {
        "name": spec.name, "algo": spec.algo, "points": len(points), "seeds": spec.seeds, "runs": len(runs),
        "compilations": timing["compiles"], "compile_s": round(timing["compile_s"], 3),
        "run_s": round(timing["run_s"], 3), "env_steps": timing["steps_done"],
        "steps_per_second": round(timing["steps_done"] / max(timing["run_s"], 1e-9)),
        "diverged_runs": sum(r["status"] == "diverged" for r in runs),
        "metric": spec.metric, "best": ranking[0] if ranking else None,
        "resumed_groups": len(resumed_groups),
    }
    if rec:
        rec.write_ranking(ranking)
        if best_config is not None:
            rec.write_best(spec, best_config, ranking[0])
        plots.plot_hparams(sweep_dir / "hparams.png", spec, points, runs)
        plots.plot_top_curves(sweep_dir / "top_curves.png", spec, points, ranking, curves)
        summary["wall_s"] = round(time.perf_counter() - wall_start, 3)
        rec.write_json("summary.json", summary)
        rec.finish("finished")
    return SweepResult(sweep_dir, runs, ranking, best_config, summary, spec)
