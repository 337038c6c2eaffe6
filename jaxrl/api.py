"""The Python API, of the same shape as the `jaxrl` command: resolve a config, train and resume runs
with their run directories, evaluate them, load a trained policy. Sweeps and PBT: jaxrl.sweep, jaxrl.pbt;
meta-learned objectives: jaxrl.meta."""

from __future__ import annotations

from pathlib import Path

from jaxrl.algos import resolve_config
from jaxrl.evaluate import evaluate_run as evaluate, load_policy
from jaxrl.family_eval import evaluate_family
from jaxrl.trainer import TrainResult, train
from jaxrl.trainer import resume as resume_run


def resume(run_dir: str | Path, from_checkpoint: int | None = None, overrides: dict | None = None,
           progress: bool | str = True, eval_episodes: int = 10, devices: int | None = None, log=None,
           callbacks=()):
    """`jaxrl resume`: continue a stopped run (see `trainer.resume`), a sweep directory as a sweep, a PBT
    directory as PBT, a bench directory as a bench, a meta-learning directory (jaxrl.meta) from its last finished
    generation (`log` and `callbacks` apply to runs only)."""
    from jaxrl import bench, meta, pbt
    from jaxrl.errors import JaxrlError
    from jaxrl.session import import_recorded_modules
    from jaxrl.sweep import record as sweep_record
    from jaxrl.sweep import run as sweep_run

    # Directories of the batch drivers: (name, recognises, resumes, what a resume keeps).
    batches = [("a sweep", sweep_record.is_sweep_dir, sweep_run.resume_sweep, "its finished groups are kept"),
               ("PBT", pbt.is_pbt_dir, pbt.resume_pbt, "it continues from its latest checkpoint"),
               ("a bench", bench.is_bench_dir, bench.resume_bench, "its finished groups are kept"),
               ("a meta run", meta.is_meta_dir, meta.resume_meta, "it continues from its last finished generation")]
    for name, recognises, resumes, keeps in batches:
        if recognises(run_dir):
            if log or callbacks:
                raise JaxrlError("--log and callbacks apply to single runs; resuming a sweep, PBT, bench or meta "
                                 "run takes neither")
            if from_checkpoint is not None or overrides:
                raise JaxrlError(f"--from-checkpoint and --set do not apply to {name} ({keeps})")
            import_recorded_modules(run_dir)
            return resumes(run_dir, progress=progress, devices=devices)
    return resume_run(run_dir, from_checkpoint, overrides, progress, eval_episodes, devices, log, callbacks)


__all__ = ["resolve_config", "train", "resume", "evaluate", "evaluate_family", "load_policy", "TrainResult"]
