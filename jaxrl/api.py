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

    if (log or callbacks) and (sweep_record.is_sweep_dir(run_dir) or pbt.is_pbt_dir(run_dir)
                               or bench.is_bench_dir(run_dir) or meta.is_meta_dir(run_dir)):
        raise JaxrlError("--log and callbacks apply to single runs; resuming a sweep, PBT, bench or meta run takes "
                         "neither")
    if sweep_record.is_sweep_dir(run_dir):
        if from_checkpoint is not None or overrides:
            raise JaxrlError("--from-checkpoint and --set do not apply to a sweep (its finished groups are kept)")
        import_recorded_modules(run_dir)
        return sweep_run.resume_sweep(run_dir, progress=progress, devices=devices)
    if pbt.is_pbt_dir(run_dir):
        if from_checkpoint is not None or overrides:
            raise JaxrlError("--from-checkpoint and --set do not apply to PBT (it continues from its latest checkpoint)")
        return pbt.resume_pbt(run_dir, progress=progress, devices=devices)
    if bench.is_bench_dir(run_dir):
        if from_checkpoint is not None or overrides:
            raise JaxrlError("--from-checkpoint and --set do not apply to a bench (its finished groups are kept)")
        import_recorded_modules(run_dir)
        return bench.resume_bench(run_dir, progress=progress, devices=devices)
    if meta.is_meta_dir(run_dir):
        if from_checkpoint is not None or overrides:
            raise JaxrlError("--from-checkpoint and --set do not apply to a meta run (it continues from its last "
                             "finished generation)")
        return meta.resume_meta(run_dir, progress=progress, devices=devices)
    return resume_run(run_dir, from_checkpoint, overrides, progress, eval_episodes, devices, log, callbacks)


__all__ = ["resolve_config", "train", "resume", "evaluate", "evaluate_family", "load_policy", "TrainResult"]
