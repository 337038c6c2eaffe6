"""The train and resume drivers: one config's seeds in one program, with a run directory."""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from jaxrl import algos, checkpoint, devices as devices_, loggers, loop, plots, records
from jaxrl.config import check_keys, fields_of, recorded_config, stacked_hparams, to_dict
from jaxrl.errors import JaxrlError
from jaxrl.progress import Progress
from jaxrl.session import (DEFAULT_CHECKPOINT_EVERY, Checkpoints, Session, check_checkpoint_format, checkpoint_info,
                           load_run_config, parse_every, run_keys)


@dataclass
class TrainResult:
    run_dir: Path | None
    summary: dict
    state: Any  # final runner state, batched over seeds
    metrics: dict[str, np.ndarray]  # name -> [num_seeds, logged rows]


def train(config, out: str | None = None, progress: bool | str | Progress = True, record: bool = True,
          eval_episodes: int = 10, checkpoint_every: int | str = DEFAULT_CHECKPOINT_EVERY, keep_checkpoints: int = 3,
          devices: int | None = None, log: str | Iterable[str] | None = None,
          callbacks: Iterable[Callable[[loggers.Chunk], None]] = ()) -> TrainResult:
    """Train `config` (all seeds in one program); with `record`, write a run directory with a
    checkpoint of the whole loop state every `checkpoint_every` (updates, or wall time such as "5m")
    and at the end. `devices`: how many devices share the work (None: all; see jaxrl.devices).
    `log`: loggers writing into the run directory too ("tensorboard", "wandb"; see jaxrl.loggers);
    `callbacks`: functions called with every chunk's metric rows (a loggers.Chunk), on process 0."""
    parse_every(checkpoint_every)
    log = loggers.parse_log(log)
    if log and not record:
        raise JaxrlError(f"log={','.join(log)} writes into the run directory; it needs record=True")
    if keep_checkpoints < 1:
        raise JaxrlError(f"keep_checkpoints={keep_checkpoints}: must be >= 1")
    wall_start = time.perf_counter()
    algorithm = algos.of_config(config)
    program = algorithm.make_program(config)  # builds the env, checks it fits the algorithm
    layout = devices_.plan(devices, config.num_seeds, program.env_shards)
    loop.check_memory(program, run_keys(config.seed, config.num_seeds)[1],
                      stacked_hparams([config] * config.num_seeds), layout.describe()["devices"])
    run_dir = records.new_run_dir(out, algorithm.name, config.env) if record else None
    rec = records.RunRecord(run_dir, to_dict(config), algorithm.name, checkpoint_every=checkpoint_every,
                            keep_checkpoints=keep_checkpoints, log=list(log), **layout.describe()) \
        if record and devices_.is_main() else None
    return _execute(config, program, layout, run_dir, rec, progress, eval_episodes, checkpoint_every,
                    keep_checkpoints, None, wall_start, log=log, callbacks=callbacks)


def _execute(config, program, layout, run_dir, rec, progress, eval_episodes: int, checkpoint_every,
             keep_checkpoints: int, start_step: int | None, wall_start: float,
             hparam_changes: dict | None = None, log: tuple[str, ...] = (),
             callbacks: Iterable[Callable] = ()) -> TrainResult:
    """The host side of a run (fresh, or resumed from checkpoint `start_step` with `hparam_changes` applied
    from there on): a session with progress, metrics, loggers, checkpoints and preemption, then the summary.
    Every process runs this; only process 0 writes the record (it holds `rec`) and feeds the loggers and
    callbacks, all of them take part in checkpoint writes. `progress` may be a Progress of the caller's (a
    bench shows its runs on one display)."""
    algorithm = algos.of_config(config)
    seeds, keys = run_keys(config.seed, config.num_seeds)
    bar = progress if isinstance(progress, Progress) else Progress(program.num_updates * program.steps_per_update,
                                                                    progress)
    checkpoints = Checkpoints(run_dir / "checkpoints", checkpoint_every, keep_checkpoints,
                              checkpoint_info(algorithm.name, to_dict(config)), algorithm.policy_state) \
        if run_dir else None
    last = {"t": 0.0, "steps": (start_step or 0) * program.steps_per_update}
    # wall_time continues from the checkpoint's last row (None: written before metrics.csv had the column)
    wall_before = rec.metrics_rows[-1].get("wall_time", "") if rec and rec.metrics_rows else 0.0
    wall_before = None if wall_before == "" else wall_before

    def on_chunk(report):
        dt = report.run_seconds - last["t"]
        sps = (report.env_steps - last["steps"]) * config.num_seeds / max(dt, 1e-9)
        last.update(t=report.run_seconds, steps=report.env_steps)
        if rec or sinks:
            wall = None if wall_before is None else wall_before + time.perf_counter() - wall_start
            rows = records.metric_rows(report, config.seed, program.steps_per_update, program.log_every, sps, wall)
            if rec:
                rec.add_metrics(rows)
            sinks(loggers.Chunk(rows, report, run_dir))
        count = np.nan_to_num(report.metrics["episodes"]).sum()
        ret = np.nan_to_num(report.metrics["episode_return_sum"]).sum() / count if count else float("nan")
        bar.chunk(report.env_steps, sps, ret)

    on_abort = (lambda status, message: rec.finish(status, message)) if rec else None
    session = Session(program, keys, stacked_hparams([config] * config.num_seeds), layout, checkpoints,
                      on_abort=on_abort, resume_hint=f"jaxrl resume {run_dir}" if run_dir else None)

    def open_loggers():  # inside the record's failure handling below: one that cannot start fails the run
        return loggers.Loggers([*(loggers.make_loggers(log, rec, start_step, last["steps"] + 1) if rec else []),
                                *(callbacks if devices_.is_main() else ())])

    # the lock: see records.RunLock
    with rec.lock if rec else nullcontext(), records.failures(rec), bar, session, open_loggers() as sinks:
        start = session.restore(start_step) if start_step is not None else None
        if hparam_changes:
            hp = program.get_hparams(start.state)
            start.state = program.set_hparams(start.state, {**hp, **{
                k: np.full(config.num_seeds, v, np.float32) for k, v in hparam_changes.items()}})
        what = f"resuming after update {start_step}" if start else f"{config.num_seeds} seed(s)"
        bar.compiling(f"{algorithm.name} on {config.env}, {what}")
        bar.compiled(session.compile().seconds)
        out = session.run(on_chunk, start)
        bar.close()
        state, metrics, diverged_at, timings = out.state, out.metrics, out.diverged_at, out.timings
        final = records.final_returns(metrics)
        finished = final[~np.isnan(final)]  # seeds with an episode in the final window
        first = start_step or 0
        summary = {
            "algo": algorithm.name,
            "env": config.env,
            "seeds": seeds.tolist(),
            "env_steps_per_seed": program.num_updates * program.steps_per_update,
            "final_return_mean": _num(finished.mean()) if finished.size else None,
            "final_return_std": _num(finished.std()) if finished.size else None,
            "final_return_per_seed": [_num(v) for v in final],
            "best_return": _num(np.fmax.reduce(records.smoothed_returns(metrics).mean(0))),  # NaN: no episode
            "diverged": {int(seed): int(at) for seed, at in zip(seeds, diverged_at) if at >= 0},
            **layout.describe(),
            "compile_s": round(timings["compile_s"], 3),
            "run_s": round(timings["run_s"], 3),
            "steps_per_second": round((program.num_updates - first) * program.steps_per_update * config.num_seeds
                                      / timings["run_s"]),
        }
        if start is not None:
            summary["resumed_from_update"] = start_step
        policy = layout.to_host(algorithm.policy_state(state))
        # The learning curves are drawn while the policy is evaluated (mostly compiled code).
        curves = loop.in_background(plots.plot_curves, rec.path, metrics, program.steps_per_update * program.log_every,
                               f"{algorithm.name} on {config.env}") if rec else None
        if eval_episodes:
            from jaxrl.evaluate import evaluate_state

            summary["eval"] = evaluate_state(config, policy, eval_episodes, seed=config.seed)
        if rec:
            curves.result()
            if algorithm.report:  # an algorithm's own after-training record (self-play ratings)
                summary.update(algorithm.report(config, policy, rec.path, program.steps_per_update))
            summary["wall_s"] = round(time.perf_counter() - wall_start, 3)
            rec.write_summary(summary)
            rec.finish("finished")
        return TrainResult(run_dir, summary, state, metrics)


def resume(run_dir: str | Path, from_checkpoint: int | None = None, overrides: dict[str, Any] | None = None,
           progress: bool | str | Progress = True, eval_episodes: int = 10, devices: int | None = None,
           log: str | Iterable[str] | None = None, callbacks: Iterable[Callable[[loggers.Chunk], None]] = ()
           ) -> TrainResult:
    """`jaxrl resume`: continue a stopped or killed run from its latest (or a chosen) checkpoint.

    On the same machine and device count the result is bitwise the run that was never stopped.
    `overrides` may change dynamic hyperparameters only (they do not change shapes); so may edits of
    the dynamic fields in config.yaml, recorded as `config_changes`. The loggers the run was started
    with go on, and `log` adds more (see `train`).
    """
    wall_start = time.perf_counter()
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    meta_path = run_dir / "metadata.json"
    if not meta_path.is_file():
        raise JaxrlError(f"{str(run_dir)!r} is not a run directory: it has no metadata.json")
    # Held until the run ends, from before reading checkpoints that another process could be replacing.
    lock = records.RunLock(run_dir) if devices_.is_main() else None
    meta = records.unfinished(run_dir, "run")
    log = loggers.parse_log([*meta.get("log", []), *loggers.parse_log(log)])
    if lock and meta.get("status") == "running":  # its process would hold the lock: it is gone
        print(f"note: run {str(run_dir)!r} was still marked running, but its process (pid {meta.get('pid', '?')} on "
              f"{meta.get('host', '?')}) is gone; resuming it", file=sys.stderr)
    ckpt_dir = run_dir / "checkpoints"
    step, info = checkpoint.restore_info(ckpt_dir, from_checkpoint, flag="--from-checkpoint {}")
    check_checkpoint_format(run_dir, step, info)
    algorithm = algos.of_config(config)
    dynamic = {f.name for f in fields_of(type(config), "dynamic")}
    written = recorded_config(type(config), info["config"])  # what the run used up to the checkpoint
    current = to_dict(config)
    changed = [k for k in current if k not in dynamic and written.get(k) != current[k]]
    if changed:
        raise JaxrlError("config.yaml differs from the config checkpoint {} was written with: {}; only dynamic "
                         "hyperparameters can change on resume ({})".format(
                             step, ", ".join(f"{k}: {written.get(k)!r} -> {current[k]!r}" for k in changed),
                             ", ".join(sorted(dynamic))))
    overrides = dict(overrides or {})
    check_keys(type(config), overrides, "resume overrides")
    fixed = [k for k in overrides if k not in dynamic]
    if fixed:
        raise JaxrlError(f"{', '.join(fixed)} cannot change on resume (only dynamic hyperparameters can: "
                         f"{', '.join(sorted(dynamic))})")
    config = dataclasses.replace(config, **overrides)  # validated again
    # Dynamic fields edited in config.yaml or set with --set apply from here on, and are recorded.
    changes = [{"after_update": step, "field": k, "old": written.get(k), "new": getattr(config, k),
                "source": "--set" if k in overrides else "config.yaml"}
               for k in current if k in dynamic and getattr(config, k) != written.get(k)]
    program = algorithm.make_program(config)
    layout = devices_.plan(devices, config.num_seeds, program.env_shards)
    rec = None
    if devices_.is_main():
        later = [s for s in checkpoint.steps(ckpt_dir) if s > step]
        if later:  # kept, not deleted: moved aside so the resumed run can write its own
            aside = run_dir / "checkpoints-superseded"
            aside.mkdir(exist_ok=True)
            for s in later:
                shutil.move(str(ckpt_dir / str(s)), str(aside / str(s)))
        from jaxrl.envs.registry import imported_modules

        rec = records.RunRecord.reopen(run_dir, step, lock)
        rec.write_metadata(**layout.describe(), config_changes=rec.meta.get("config_changes", []) + changes,
                           imports=imported_modules(), log=list(log))
        if changes or overrides:  # config.yaml says what the run uses
            rec.write_yaml("config.yaml", {"algo": algorithm.name, **to_dict(config)})
        if progress:
            for c in changes:
                print(f"{c['field']}: {c['old']} -> {c['new']} ({c['source']}) from update {step + 1} on",
                      file=sys.stderr)
    devices_.barrier("resume")
    every = meta.get("checkpoint_every") or DEFAULT_CHECKPOINT_EVERY
    return _execute(config, program, layout, run_dir, rec, progress, eval_episodes, every,
                    meta.get("keep_checkpoints", 3), step, wall_start, {c["field"]: c["new"] for c in changes}, log,
                    callbacks)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 4)
