"""Where a run's metrics go besides metrics.csv: TensorBoard event files, Weights & Biases, and the
callbacks of the Python API.

Every logger is fed the same thing after every chunk: the chunk's metrics.csv rows (a `Chunk`), on
the host, between compiled chunks (nothing here runs inside compiled code). A logger is any callable
`logger(chunk)`, with an optional `close()` called when the run ends, however it ends; `Loggers`
runs a list of them. A driver that writes metric rows feeds them here (train and resume do).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from jaxrl.errors import JaxrlError

PACKAGES = {"tensorboard": "tensorboardX", "wandb": "wandb"}  # logger name (and extra) -> what it writes with
NAMES = tuple(PACKAGES)
AXES = ("seed", "update", "env_steps")  # what a row is indexed by, not a value to plot


@dataclass
class Chunk:
    """What a logger gets after each chunk."""

    rows: list[dict]  # the chunk's metrics.csv rows: one per logged row (log_every updates) per seed
    report: Any  # the chunk itself (jaxrl.loop.ChunkReport: metric arrays, env_steps, state, ...)
    run_dir: Path | None  # None for a run without a record


def parse_log(log: str | Iterable[str] | None) -> tuple[str, ...]:
    """The loggers named by `log` ("tensorboard,wandb", or a list of names), checked to be known and
    installed (before a run starts); () for none."""
    names = [n.strip() for n in (log.split(",") if isinstance(log, str) else log or ()) if n.strip()]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise JaxrlError(f"log={','.join(unknown)}: unknown logger; valid: {', '.join(NAMES)}")
    for name in names:
        _require(name)
    return tuple(dict.fromkeys(names))


def scalars(row: dict) -> dict[str, float]:
    """A row's values to plot: every column but the axes, without the empty ones (no episode ended)."""
    return {k: float(v) for k, v in row.items() if k not in AXES and v != ""}


class Loggers:
    """The loggers of one run: `loggers(chunk)` feeds each in turn; as a context manager, closes them at the end."""

    def __init__(self, loggers: Iterable[Callable[[Chunk], None]]):
        self.loggers = list(loggers)

    def __call__(self, chunk: Chunk) -> None:
        for logger in self.loggers:
            logger(chunk)

    def __bool__(self) -> bool:
        return bool(self.loggers)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for logger in self.loggers:
            if hasattr(logger, "close"):
                logger.close()


def make_loggers(names: tuple[str, ...], rec, resumed_after: int | None, purge_from_step: int) -> list:
    """The loggers `names` writing into the record `rec` (a records.RunRecord). After a resume from update
    `resumed_after`, steps from `purge_from_step` on are logged again (see TensorBoard, WandB)."""
    out = []
    for name in names:
        if name == "tensorboard":
            out.append(TensorBoard(rec.path / "tensorboard", purge_from_step if resumed_after is not None else None))
        else:
            out.append(WandB(rec, resumed_after))
    return out


def _require(name: str):
    """The package logger `name` writes with; not installed: a one-line error naming the extra."""
    import importlib

    try:
        return importlib.import_module(PACKAGES[name])
    except ImportError:
        raise JaxrlError(f"log={name} needs the {PACKAGES[name]} package: pip install 'jaxrl[{name}]'") from None


class TensorBoard:
    """TensorBoard event files, one directory per seed (`tensorboard --logdir RUN/tensorboard` shows the
    seeds as runs), every column of metrics.csv as a scalar against env steps. A resumed run adds a new
    event file to each directory; it starts with a restart marker at `purge_step`, which makes TensorBoard
    drop the steps logged after the checkpoint by the stopped process (they are logged again)."""

    def __init__(self, logdir: Path, purge_step: int | None):
        self.writer_class = _require("tensorboard").SummaryWriter
        self.logdir, self.purge_step = logdir, purge_step
        self.writers = {}

    def _writer(self, seed: int):
        if seed not in self.writers:
            self.writers[seed] = self.writer_class(str(self.logdir / f"seed_{seed}"), purge_step=self.purge_step)
        return self.writers[seed]

    def __call__(self, chunk: Chunk) -> None:
        for row in chunk.rows:
            writer = self._writer(row["seed"])
            for tag, value in scalars(row).items():
                writer.add_scalar(tag, value, row["env_steps"])
        for writer in self.writers.values():
            writer.flush()  # a killed run keeps what it logged

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class WandB:
    """A Weights & Biases run per run directory (and per resume), offline unless WANDB_MODE says otherwise
    (WANDB_MODE=online; WANDB_PROJECT, default "jaxrl"; WANDB_ENTITY). Its files go to RUN/wandb (or
    WANDB_DIR); `wandb sync RUN/wandb/offline-run-*` uploads an offline one. Each seed's columns are
    logged as seed_<seed>/<column> against `env_steps`. A resume starts a new W&B run in the same group,
    naming the one before in its config (`resumed_from`, `resumed_after_update`): W&B cannot resume an
    offline run, and this way nothing logged before is replaced. The W&B run ids are kept in
    metadata.json (`wandb_runs`)."""

    def __init__(self, rec, resumed_after: int | None):
        wandb = _require("wandb")
        earlier = rec.meta.get("wandb_runs", [])
        config = {**_read_config(rec.path), "run_dir": str(rec.path)}
        name = rec.path.name
        if resumed_after is not None:
            config.update(resumed_after_update=resumed_after, resumed_from=earlier[-1] if earlier else None)
            name += f"-resume{len(rec.meta.get('resumes', []))}"
        mode = os.environ.get("WANDB_MODE", "offline")
        try:
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "jaxrl"), name=name, group=rec.path.name,
                                  config=config, mode=mode, dir=None if "WANDB_DIR" in os.environ else str(rec.path),
                                  reinit="create_new")
        except wandb.errors.Error as err:  # online without `wandb login`, a bad WANDB_MODE, ...
            raise JaxrlError(f"log=wandb: W&B could not start a run (WANDB_MODE={mode}): {err}") from None
        self.run.define_metric("*", step_metric="env_steps")
        rec.write_metadata(wandb_runs=earlier + [self.run.id])

    def __call__(self, chunk: Chunk) -> None:
        steps = {}  # env_steps -> the values of every seed there
        for row in chunk.rows:
            values = steps.setdefault(row["env_steps"], {"env_steps": row["env_steps"], "update": row["update"]})
            values.update({f"seed_{row['seed']}/{k}": v for k, v in scalars(row).items()})
        for values in steps.values():
            self.run.log(values)

    def close(self) -> None:
        self.run.finish()


def _read_config(run_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())
