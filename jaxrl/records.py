"""Run records: what every run leaves on disk.

    config.yaml    full resolved config (rerun with `jaxrl train --config`)
    metadata.json  versions, git commit and dirty flag, package-set hash, device, command, times, status
    packages.txt   every installed distribution, `name==version` a line (hashed in metadata.json)
    metrics.csv    one row per update per seed (wall_time: seconds the run has trained, see metric_rows)
    summary.json   final and best figures
    checkpoints/   orbax (see `checkpoint`)
    curves.png     learning curves, mean and spread over seeds
    .lock          held by the process training in the directory (`RunLock`)
Every file is written to a temporary name and renamed, so a crash never
leaves a half-written record (a resume removes the temporary files a kill left).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import warnings
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


def git_dirty() -> bool | None:
    """Whether jaxrl's git checkout has uncommitted changes to tracked files (None: not a checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


@functools.cache
def installed_packages() -> str:
    """Every installed distribution as `name==version` lines, sorted: the environment a run can be
    reproduced in (Open RL Benchmark keeps the same)."""
    found = {f"{name}=={version}" for name, version in map(_name_and_version, importlib_metadata.distributions())
             if name}
    return "".join(f"{line}\n" for line in sorted(found, key=str.lower))


def _name_and_version(dist) -> tuple[str | None, str | None]:
    """A distribution's Name and Version, read from the head of its metadata file: `dist.metadata` parses the
    whole file as e-mail headers, 15x slower over a full environment (a tenth of a second per command)."""
    name = version = None
    for line in (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").splitlines():
        if not line:  # the headers end here
            break
        if line.startswith("Name: "):
            name = line[len("Name: "):].strip()
        elif line.startswith("Version: "):
            version = line[len("Version: "):].strip()
    return name, version


def packages_hash(packages: str) -> str:
    """A short hash of `installed_packages()`: equal hashes, equal package sets."""
    return hashlib.sha256(packages.encode()).hexdigest()[:16]


def code_version() -> dict[str, Any]:
    """The code and packages a record is written with (a resume notes its own, see `Record.reopen`)."""
    return {"git_commit": git_commit(), "git_dirty": git_dirty(), "packages_hash": packages_hash(installed_packages())}


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
    try:
        if out:
            path = Path(out)
            if path.is_file():
                raise JaxrlError(f"output directory {out!r} is a file; choose another --out")
            if path.exists() and any(path.iterdir()):
                raise JaxrlError(f"output directory {out!r} already exists and is not empty; choose another --out")
        else:
            name = env_id.split(":")[-1].replace("/", "_")
            path = Path(root) / f"{algo}-{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            suffix = 1
            while path.exists():
                path = path.with_name(f"{path.name.rsplit('.', 1)[0]}.{suffix}")
                suffix += 1
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a parent is a file, no permission, a read-only file system, ...
        raise JaxrlError(f"cannot create output directory {str(path)!r}: {err.strerror or err}; "
                         f"choose another --out") from None
    return path


def base_metadata() -> dict[str, Any]:
    """What every record's metadata.json starts with: versions, machine, command, status (the full
    package list goes to packages.txt, see `Record`)."""
    import jax

    from jaxrl.envs.registry import imported_modules

    return {
        "jaxrl_version": importlib_metadata.version("jaxrl"),
        **code_version(),
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
        "imports": imported_modules(),  # --import: eval and resume import them again
        **this_process(),
    }


def this_process() -> dict[str, Any]:
    """Who writes a record while it is `running`, so a later command can tell whether it still runs."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_gone(meta: dict) -> bool:
    """True when a `running` record's process no longer runs (killed, or it could not write its final
    status); False while it runs, or where that cannot be told (another host, an older record)."""
    pid = meta.get("pid")
    if meta.get("status") != "running" or meta.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process has this pid
        return False
    return False


def run_status(path: Path) -> str:
    """A record directory's status as its metadata.json says (`finished`, `running`, `preempted`,
    `failed`, `interrupted`), where `running` is told apart from a run whose process is gone."""
    try:
        meta = read_metadata(Path(path) / "metadata.json")
    except JaxrlError as err:
        return f"unknown: {err}"
    if process_gone(meta):
        return f"running, but its process (pid {meta['pid']}) is gone"
    return str(meta.get("status"))


def unfinished(record_dir: Path, what: str) -> dict:
    """The metadata of a record to resume (`what`: run, sweep, PBT run, ...); one that has finished is refused."""
    meta = read_metadata(Path(record_dir) / "metadata.json")
    if meta.get("status") == "finished":
        raise JaxrlError(f"{what} {str(record_dir)!r} has finished; nothing to resume")
    return meta


def read_metadata(path: Path) -> dict:
    """A record's metadata.json; a damaged one is a one-line error naming it."""
    try:
        meta = json.loads(Path(path).read_text())
    except OSError as err:
        raise JaxrlError(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    except ValueError as err:  # not UTF-8 or not JSON
        raise JaxrlError(f"{str(path)!r} is damaged (not valid JSON: {err}); restore it from a copy") from None
    if not isinstance(meta, dict):
        raise JaxrlError(f"{str(path)!r} is damaged (a JSON {type(meta).__name__}, not an object); "
                         f"restore it from a copy")
    return meta


class RunLock:
    """An exclusive lock on a run directory (flock on its .lock file), held by the process that trains
    in it (`jaxrl train`, `jaxrl resume`) until `release`, until the object is dropped or until the
    process ends, even by kill -9. A second process is refused, naming the holder, instead of both
    writing (and deleting) checkpoints."""

    file = None  # the open .lock file while the lock is held

    def __init__(self, path: Path):
        import fcntl

        try:
            file = open(Path(path) / ".lock", "a+")
        except OSError as err:
            raise JaxrlError(f"cannot lock run directory {str(path)!r}: {err.strerror or err}") from None
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            pid, _, host = file.read().partition(" ")
            file.close()
            raise JaxrlError(f"run directory {str(path)!r} is in use by another jaxrl process (pid {pid or '?'} on "
                             f"{host or 'this host'}); wait for it to end or stop it first") from None
        file.truncate(0)
        file.write("{pid} {host}".format(**this_process()))
        file.flush()
        self.file = file

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing the file drops the lock
            self.file = None

    __del__ = release

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Record:
    """A record directory's metadata.json (status `running` until `finish`) and its JSON files."""

    def __init__(self, path: Path, **metadata):
        self.path = Path(path)
        self.meta = base_metadata() | metadata
        atomic_write(self.path / "packages.txt", installed_packages())
        self.write_metadata()

    @classmethod
    def reopen(cls, path: Path, **resume):
        """Continue a record directory: metadata keeps its history, notes the resume and says running."""
        rec = cls.__new__(cls)
        rec.path = Path(path)
        rec.meta = read_metadata(rec.path / "metadata.json")
        resumes = rec.meta.get("resumes", []) + [{**resume, "previous_status": rec.meta.get("status"), "time": now(),
                                                  "command": sys.argv, **code_version()}]
        rec.write_metadata(status="running", error=None, end_time=None, resumes=resumes, **this_process())
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
        """Marks the record `preempted`, `interrupted` (Ctrl-C) or `failed` (with the error) if the block
        raises. The block's error is what the caller sees: when the status cannot be written either
        (the full disk that failed the run), that is added to it as a note."""
        from jaxrl.errors import Preempted

        try:
            yield
        except BaseException as err:
            if isinstance(err, Preempted):
                status, message = "preempted", str(err)
            else:
                status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
                message = f"{type(err).__name__}: {err}"
            try:
                self.finish(status, message)
            except JaxrlError as write_err:
                err.add_note(f"the run's status ({status}) could not be recorded either: {write_err}")
            raise


class RunRecord(Record):
    """A run directory; the host loop calls it between compiled chunks."""

    def __init__(self, path: Path, config: dict[str, Any], algo: str, **metadata):
        self.lock = RunLock(path)
        self.metrics_rows: list[dict] = []
        self.path = Path(path)
        self.write_yaml("config.yaml", {"algo": algo, **config})
        super().__init__(path, **metadata)

    @classmethod
    def reopen(cls, path: Path, done: int, lock: RunLock) -> RunRecord:
        """Continue a run directory, whose `lock` the caller holds, from update `done`: metrics rows
        after it are dropped (they are computed again), temporary files a killed process left are removed."""
        for tmp in [*Path(path).glob(".*.tmp"), *Path(path).glob(".*.tmp.*")]:  # atomic_write, plots.save_figure
            tmp.unlink(missing_ok=True)
        rec = super().reopen(path, from_update=done)
        rec.lock = lock
        rows = read_metrics(rec.path / "metrics.csv") if (rec.path / "metrics.csv").is_file() else []
        rec.metrics_rows = [_typed(r) for r in rows if int(r["update"]) <= done]
        return rec

    def add_metrics(self, rows: list[dict]) -> None:
        self.metrics_rows.extend(rows)
        write_csv(self.path / "metrics.csv", self.metrics_rows)

    def write_summary(self, summary: dict) -> None:
        self.write_json("summary.json", summary)


# Columns that differ between two runs computing the same thing (a resumed run and one never stopped).
TIMING_COLUMNS = ("steps_per_second", "wall_time")


def metric_rows(report, first_seed: int, steps_per_update: int, log_every: int, steps_per_s: float,
                wall_time: float | None) -> list[dict]:
    """metrics.csv rows of one chunk: one per logged row (`log_every` updates) per seed. `wall_time`:
    seconds since the run started when the chunk ended, compilation included, counting only the time a
    process trained it (a resume continues from the checkpoint's rows); None (an empty column) where
    that is unknown: a run resumed from rows written before the column existed."""
    m = report.metrics
    num_runs, num_rows = m["episodes"].shape
    rows = []
    for s in range(num_runs):
        for i in range(num_rows):
            update = min(report.first_update + (i + 1) * log_every, report.done)
            count = np.nan_to_num(m["episodes"][s, i])  # NaN after a run diverged
            row = {
                "seed": first_seed + s,
                "update": update,
                "env_steps": update * steps_per_update,
                "episodes": int(count),
                "episode_return": float(m["episode_return_sum"][s, i] / count) if count else "",
                "episode_length": float(m["episode_length_sum"][s, i] / count) if count else "",
            }
            row.update({k: float(v[s, i]) for k, v in m.items()
                        if k not in ("episodes", "episode_return_sum", "episode_length_sum")})
            row["steps_per_second"] = round(steps_per_s)
            row["wall_time"] = "" if wall_time is None else round(wall_time, 3)
            rows.append(row)
    return rows


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


def last_episodes_returns(metrics: dict[str, np.ndarray], episodes: int = 20) -> np.ndarray:
    """Per seed: the mean return of the episodes in the fewest last logged rows that hold `episodes` of them
    (all of its episodes when it finished fewer; NaN when none)."""
    count = np.nan_to_num(metrics["episodes"])[:, ::-1]
    total = np.nan_to_num(metrics["episode_return_sum"])[:, ::-1]
    rows = [np.searchsorted(np.cumsum(c), episodes) + 1 for c in count]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array([t[:n].sum() / c[:n].sum() for c, t, n in zip(count, total, rows)])


def curve_mean_returns(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """Per run: the mean over its updates of each update's mean episode return (the area under its learning
    curve over its length; updates that finished no episode left out); NaN when it diverged or finished none."""
    per_update = mean_returns(metrics)
    diverged = np.isnan(metrics["episodes"]).any(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a run without any finished episode: NaN, said above
        return np.where(diverged, np.nan, np.nanmean(per_update, 1))


def final_returns(metrics: dict[str, np.ndarray], fraction: float = 0.05) -> np.ndarray:
    """Per seed: mean return of the episodes that finished in the last `fraction` of updates."""
    n = max(1, int(round(metrics["episodes"].shape[1] * fraction)))
    count = np.nan_to_num(metrics["episodes"][:, -n:]).sum(1)  # NaN after a run diverged: no episodes
    total = np.nan_to_num(metrics["episode_return_sum"][:, -n:]).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
