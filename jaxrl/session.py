"""The session: how every driver (train, resume, sweep, PBT) runs a Program on the host.

A session compiles one Program for a batch of runs on a device layout (a signal while it compiles
ends the process at once), starts the runs or continues them from a checkpoint, runs chunk after
chunk handing each report to its driver, checkpoints the whole loop state (run states, divergence
flags, metrics so far, and the driver's own state, such as a PBT schedule) at a cadence measured in
wall time or updates, and stops cleanly on SIGTERM/SIGINT. Drivers own their records; the session
owns the loop, so records, checkpoints, resume, devices and lane isolation hold for every algorithm
and driver alike.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jaxrl import checkpoint, loop, records
from jaxrl.algos import resolve_config
from jaxrl.devices import SINGLE, Layout
from jaxrl.errors import JaxrlError, Preempted
from jaxrl.preemption import PreemptionGuard

# Checkpoints by wall time, not by a count of updates: a short run writes one at its end, a long
# one every few minutes, and a checkpoint costs the run nothing measurable either way.
DEFAULT_CHECKPOINT_EVERY = "5m"
_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_every(every: int | str) -> tuple[int | None, float | None]:
    """`checkpoint_every` -> (updates, seconds): an int (or digits) counts updates, "30s", "5m", "1h" wall time."""
    text = str(every).strip()
    if re.fullmatch(r"[1-9]\d*", text):
        return int(text), None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", text)
    if match and float(match[1]) > 0:
        return None, float(match[1]) * _UNITS[match[2]]
    raise JaxrlError(f"checkpoint_every={every!r}: give a number of updates (e.g. 50) or a wall time such as 30s, "
                     f"5m or 1h")


def preload_host_modules() -> None:
    """Import what the host side needs once the run is going (orbax for checkpoints, matplotlib for the figures
    every driver draws): called on a worker thread while XLA compiles the chunk without the GIL
    (`loop.compile_program`'s `while_compiling`), these imports (1-2 s on a 2-core machine) leave the process's
    critical path, and the run does not share the CPU with them."""
    import orbax.checkpoint  # noqa: F401

    from jaxrl import plots

    plots.pyplot()


def run_keys(seed: int, num_seeds: int):
    """Seeds of a run and their keys: seed i of a run uses PRNGKey(seed + i)."""
    import jax
    import jax.numpy as jnp

    seeds = np.arange(seed, seed + num_seeds)
    return seeds, jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))


@dataclass
class Driver:
    """A driver's own state on the device, stepped between chunks and checkpointed with the runs:
    `init() -> driver_state`; `step(state, diverged_at, metrics, chunk_index, driver_state)
    -> (state, diverged_at, driver_state)` (population-based training's exploit/explore)."""

    init: Callable[[], Any]
    step: Callable


@dataclass
class Checkpoints:
    """Where and how often a session checkpoints its runs."""

    directory: Path
    every: int | str = DEFAULT_CHECKPOINT_EVERY
    keep: int = 3
    info: dict = field(default_factory=dict)  # written beside each checkpoint (algo, config, ...)
    policy_state: Callable[[Any], dict] = lambda state: {}  # the part `jaxrl eval` restores alone


@dataclass
class Outcome:
    state: Any  # runner state, batched over runs
    metrics: dict[str, np.ndarray]  # name -> [num_runs, logged rows]
    diverged_at: np.ndarray  # [num_runs]
    timings: dict  # compile_s, run_s
    driver_state: Any = None
    saved: int = 0  # update of the last checkpoint written


class Session:
    """`with Session(program, keys, hparams, ...) as session: session.compile(); session.run(on_chunk)`."""

    def __init__(self, program: loop.Program, keys, hparams, layout: Layout = SINGLE,
                 checkpoints: Checkpoints | None = None, driver: Driver | None = None,
                 on_abort: Callable[[str, str], None] | None = None, resume_hint: str | None = None,
                 compiled: loop.Compiled | None = None):
        """`compiled`: the compilation of an earlier session of the same program and number of runs."""
        self.program, self.keys, self.hparams, self.layout = program, keys, hparams, layout
        self.checkpoints, self.driver = checkpoints, driver
        self.on_abort, self.resume_hint = on_abort, resume_hint
        self.saved = 0  # update of the last complete checkpoint
        self.compiled = compiled
        self.guard = PreemptionGuard(self._stop_now)

    def __enter__(self):
        self.guard.__enter__()
        return self

    def __exit__(self, *exc):
        self.guard.__exit__(*exc)

    def _where_next(self) -> str:
        if self.resume_hint and self.saved:
            return f"resume from its last complete checkpoint with: {self.resume_hint}"
        return "no checkpoint was written, nothing to resume"

    def _stop_now(self, status: str, message: str) -> str:
        """The process ends at once (a signal while compiling, or a second signal): the driver records why."""
        message += "; " + self._where_next()
        if self.on_abort:
            self.on_abort(status, message)
        return message

    def compile(self) -> loop.Compiled:
        self.compiled = self.guard.interruptible(lambda: loop.compile_program(
            self.program, self.keys, self.hparams, self.layout, while_compiling=preload_host_modules))
        return self.compiled

    def restore(self, step: int, flag: str = "--from-checkpoint {}") -> loop.Start:
        """The loop state of checkpoint `step` in `checkpoints.directory`, checked against this program."""
        import jax

        state_shape, metric_shapes = loop.state_shapes(self.program, self.keys, self.hparams)
        num_runs = self.keys.shape[0]
        rows = -(-step // self.program.log_every)
        target = {"state": jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), state_shape),
                  "diverged_at": np.zeros(num_runs, np.int32),
                  "metrics": {k: np.zeros((num_runs, rows), m.dtype) for k, m in metric_shapes.items()}}
        if self.driver:
            target["driver"] = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), jax.eval_shape(self.driver.init))
        restored = checkpoint.restore_run(self.checkpoints.directory, step, target, flag=flag)
        self.saved = step
        return loop.Start(restored["state"], restored["diverged_at"], step, restored["metrics"],
                          restored.get("driver"))

    def run(self, on_chunk: Callable[[loop.ChunkReport], None] | None = None,
            start: loop.Start | None = None) -> Outcome:
        """Run (or continue) the runs to the end; `on_chunk(report)` after every chunk."""
        program, layout, ckpt_spec = self.program, self.layout, self.checkpoints
        every_updates, every_seconds = parse_every(ckpt_spec.every) if ckpt_spec else (None, None)
        # Made while the first chunks run; waited for at the first write.
        pending_writer = loop.in_background(checkpoint.Checkpointer, ckpt_spec.directory, ckpt_spec.keep) if ckpt_spec else None
        if start is not None:
            self.saved = start.done
        driver_state = None
        if self.driver:
            driver_state = start.driver_state if start is not None and start.driver_state is not None \
                else self.driver.init()
        last_save = {"t": time.perf_counter()}
        box = {"driver": driver_state}

        def between_chunks(state, diverged_at, metrics, index):
            state, diverged_at, box["driver"] = self.driver.step(state, diverged_at, metrics, index, box["driver"])
            return state, diverged_at

        def after_chunk(report: loop.ChunkReport):
            if on_chunk:
                on_chunk(report)
            final = report.done == program.num_updates
            if every_updates:
                due = report.done // every_updates > self.saved // every_updates
            else:
                due = pending_writer is not None and time.perf_counter() - last_save["t"] >= every_seconds
            if pending_writer and (due or final or self.guard.requested):
                run = {"state": report.state, "diverged_at": report.diverged_at,
                       "metrics": {k: np.concatenate([h[k] for h in report.history], axis=1) for k in report.metrics}}
                if self.driver:
                    run["driver"] = box["driver"]
                pending_writer.result().save(report.done, layout.to_host(run),
                                             layout.to_host(ckpt_spec.policy_state(report.state)), ckpt_spec.info)
                self.saved = report.done
                last_save["t"] = time.perf_counter()
            if self.guard.requested and not final:  # `finally` below waits for the write
                name = signal.Signals(self.guard.signum).name
                where = (f"checkpoint written; resume with: {self.resume_hint}" if pending_writer and self.resume_hint
                         else "nothing was saved")
                raise Preempted(f"stopped by {name} after update {report.done} of {program.num_updates}; {where}",
                                self.guard.signum)

        compiled = self.compiled or self.compile()
        try:
            state, metrics, diverged_at, timings = loop.run(
                program, self.keys, self.hparams, on_chunk=after_chunk, compiled=compiled, start=start,
                between_chunks=between_chunks if self.driver else None)
        finally:
            if pending_writer and pending_writer.exception() is None:  # a failure to create it was raised at use
                pending_writer.result().close()  # waits for the last write
        return Outcome(state, metrics, diverged_at, timings, box["driver"], self.saved)


def checkpoint_info(algo: str, config_dict: dict) -> dict:
    """What every run checkpoint carries beside the arrays: the writer's version, algorithm and config."""
    return {"jaxrl_version": version("jaxrl"), "algo": algo, "config": config_dict}


def check_checkpoint_format(run_dir: Path, step: int, info: dict) -> None:
    if info.get("format") != checkpoint.FORMAT:
        raise JaxrlError(f"checkpoint {step} of {str(run_dir)!r} was written by jaxrl {info.get('jaxrl_version')} "
                         f"(checkpoint format {info.get('format')}); this jaxrl {version('jaxrl')} reads format "
                         f"{checkpoint.FORMAT}")


def load_run_config(run_dir: str | Path):
    """The config a run directory was trained with (and the modules it imported, which register its env)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise JaxrlError(f"run directory {str(run_dir)!r} does not exist")
    if not (run_dir / "config.yaml").is_file():
        raise JaxrlError(f"{str(run_dir)!r} is not a run directory: it has no config.yaml")
    import_recorded_modules(run_dir)
    from jaxrl.config import load_yaml

    values = load_yaml(run_dir / "config.yaml")
    algo = values.get("algo")
    if not isinstance(algo, str):
        raise JaxrlError(f"{str(run_dir / 'config.yaml')!r} names no algo")
    return resolve_config(algo, str(run_dir / "config.yaml"))


def import_recorded_modules(record_dir: Path) -> None:
    """Import the modules a run or sweep was started with (`--import`, listed in its metadata.json)."""
    from jaxrl.envs.registry import import_modules

    meta_path = Path(record_dir) / "metadata.json"
    if meta_path.is_file():
        import_modules(records.read_metadata(meta_path).get("imports", []), f"recorded in {str(meta_path)!r}")
