"""Run records: what every run leaves on disk.

    config.yaml    full resolved config (rerun with `jaxrl train --config`)
    metadata.json  versions, git commit, device, command, times, status
    metrics.csv    one row per update per seed
    summary.json   final and best figures
    checkpoints/   orbax (see `checkpoint`)
    curves.png     learning curves, mean and spread over seeds
Every file is written to a temporary name and renamed, so a crash never
leaves a half-written record.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxrl.errors import JaxrlError

PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "orbax-checkpoint", "gymnax", "brax", "jaxmarl", "numpy")


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write `text` (or bytes) to `path` through a temporary file: a failed write (disk full, read-only
    directory) raises a JaxrlError and leaves the previous version of `path` as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise JaxrlError(f"could not write {str(path)!r}: {err.strerror or err}; its previous version is intact") \
            from None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def new_run_dir(out: str | None, algo: str, env_id: str, root: str = "runs") -> Path:
    """`out` if given (must not hold a run already), else <root>/<algo>-<env>-<time>. In a
    multi-process run, process 0 makes it and every process gets its path."""
    from jaxrl import devices

    return devices.share_path(_make_run_dir(out, algo, env_id, root) if devices.is_main() else None)


def _make_run_dir(out: str | None, algo: str, env_id: str, root: str) -> Path:
    if out:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise JaxrlError(f"output directory {out!r} already exists and is not empty; choose another --out")
    else:
        name = env_id.split(":")[-1].replace("/", "_")
        path = Path(root) / f"{algo}-{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        suffix = 1
        while path.exists():
            path = path.with_name(f"{path.name.rsplit('.', 1)[0]}.{suffix}")
            suffix += 1
    path.mkdir(parents=True, exist_ok=True)
    return path


def base_metadata() -> dict[str, Any]:
    """What every record's metadata.json starts with: versions, machine, command, status."""
    import jax

    return {
        "jaxrl_version": importlib_metadata.version("jaxrl"),
        "git_commit": git_commit(),
        "versions": versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device_kind": jax.devices()[0].device_kind,
        "device_count": jax.device_count(),
        "command": sys.argv,
        "start_time": now(),
        "end_time": None,
        "status": "running",
        "error": None,
    }


class Record:
    """A record directory's metadata.json (status `running` until `finish`) and its JSON files."""

    def __init__(self, path: Path, **metadata):
        self.path = Path(path)
        self.meta = base_metadata() | metadata
        self.write_metadata()

    @classmethod
    def reopen(cls, path: Path, **resume):
        """Continue a record directory: metadata keeps its history, notes the resume and says running."""
        rec = cls.__new__(cls)
        rec.path = Path(path)
        rec.meta = json.loads((rec.path / "metadata.json").read_text())
        resumes = rec.meta.get("resumes", []) + [{**resume, "time": now(), "command": sys.argv}]
        rec.write_metadata(status="running", error=None, end_time=None, resumes=resumes)
        return rec

    def write_metadata(self, **updates) -> None:
        self.meta.update(updates)
        atomic_write(self.path / "metadata.json", json.dumps(self.meta, indent=2))

    def finish(self, status: str, error: str | None = None) -> None:
        self.write_metadata(status=status, error=error, end_time=now())

    def write_json(self, name: str, data: dict) -> None:
        atomic_write(self.path / name, json.dumps(data, indent=2))

    def write_yaml(self, name: str, data) -> None:
        atomic_write(self.path / name, yaml.safe_dump(data, sort_keys=False))

    @contextmanager
    def failures(self):
        """Marks the record `interrupted` (Ctrl-C) or `failed` (with the error) if the block raises."""
        from jaxrl.errors import Preempted

        try:
            yield
        except Preempted as err:
            self.finish("preempted", str(err))
            raise
        except BaseException as err:
            self.finish("interrupted" if isinstance(err, KeyboardInterrupt) else "failed",
                        f"{type(err).__name__}: {err}")
            raise


class RunRecord(Record):
    """A run directory; the host loop calls it between compiled chunks."""

    def __init__(self, path: Path, config: dict[str, Any], algo: str, **metadata):
        self.metrics_rows: list[dict] = []
        self.path = Path(path)
        self.write_yaml("config.yaml", {"algo": algo, **config})
        super().__init__(path, **metadata)

    @classmethod
    def reopen(cls, path: Path, done: int) -> RunRecord:
        """Continue a run directory from update `done`: metrics rows after it are dropped (they
        are computed again)."""
        rec = super().reopen(path, from_update=done)
        rows = read_metrics(rec.path / "metrics.csv") if (rec.path / "metrics.csv").is_file() else []
        rec.metrics_rows = [_typed(r) for r in rows if int(r["update"]) <= done]
        return rec

    def add_metrics(self, rows: list[dict]) -> None:
        self.metrics_rows.extend(rows)
        write_csv(self.path / "metrics.csv", self.metrics_rows)

    def write_summary(self, summary: dict) -> None:
        self.write_json("summary.json", summary)


def failures(record: Record | None):
    """`record.failures()`, or nothing when no record is written."""
    return record.failures() if record is not None else nullcontext()


def read_metrics(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _typed(row: dict) -> dict:
    """A metrics.csv row read back: numbers as numbers, so rewriting it gives the same text."""
    out = {}
    for k, v in row.items():
        if v == "":
            out[k] = v
        elif k in ("seed", "update", "env_steps", "episodes", "steps_per_second"):
            out[k] = int(v)
        else:
            out[k] = float(v)
    return out


def plot_curves(run_dir: Path, metrics: dict[str, np.ndarray], steps_per_update: int, title: str) -> Path:
    """curves.png: episode return (mean over seeds, min-max band), value loss, entropy vs env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = (np.arange(metrics["episodes"].shape[1]) + 1) * steps_per_update
    returns = smoothed_returns(metrics)
    panels = [("episode return", returns)] + [(k.replace("_", " "), metrics[k]) for k in ("value_loss", "entropy")
                                               if k in metrics]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4))
    for ax, (name, y) in zip(np.atleast_1d(axes), panels):
        mean = np.nanmean(y, axis=0)
        ax.plot(x, mean, lw=1.5)
        if y.shape[0] > 1:
            ax.fill_between(x, np.nanmin(y, axis=0), np.nanmax(y, axis=0), alpha=0.25)
        ax.set_xlabel("env steps")
        ax.set_title(name + (f" ({y.shape[0]} seeds)" if y.shape[0] > 1 else ""))
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(run_dir) / "curves.png")


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz of named arrays, written atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, buf.getvalue())


def write_csv(path: Path, rows: list[dict]) -> None:
    """A CSV with the union of the rows' keys as header (in first-seen order), written atomically."""
    header = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def mean_returns(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """Mean return of the episodes finished in each update, [runs, updates] (NaN where none finished)."""
    count = np.nan_to_num(metrics["episodes"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, metrics["episode_return_sum"] / np.maximum(count, 1), np.nan)


def smoothed_returns(metrics: dict[str, np.ndarray], window: int = 0) -> np.ndarray:
    """Mean return of episodes finished in a trailing window of updates, [seeds, updates]."""
    count, total = np.nan_to_num(metrics["episodes"]), np.nan_to_num(metrics["episode_return_sum"])
    window = window or max(1, count.shape[1] // 50)
    kernel = np.ones(window)
    conv = lambda a: np.stack([np.convolve(r, kernel)[: a.shape[1]] for r in a])
    c, t = conv(count), conv(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, t / np.maximum(c, 1), np.nan)


def final_returns(metrics: dict[str, np.ndarray], fraction: float = 0.05) -> np.ndarray:
    """Per seed: mean return of the episodes that finished in the last `fraction` of updates."""
    n = max(1, int(round(metrics["episodes"].shape[1] * fraction)))
    count = np.nan_to_num(metrics["episodes"][:, -n:]).sum(1)  # NaN after a run diverged: no episodes
    total = np.nan_to_num(metrics["episode_return_sum"][:, -n:]).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


