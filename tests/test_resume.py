"""Durable runs: a run killed (SIGKILL) or preempted (SIGTERM) and resumed equals the run never stopped."""

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrl import checkpoint, cli, records

# 600 updates of 512 env steps in chunks of 2, a checkpoint every 50 updates: long enough (~2 s of
# training) to stop it part-way, short enough for CI.
ARGS = ["--set", "total_timesteps=307200", "--set", "updates_per_chunk=2", "--checkpoint-every", "50",
        "--no-progress", "--eval-episodes", "0"]


def jaxrl(*args):
    return subprocess.run([sys.executable, "-m", "jaxrl.cli", *args], capture_output=True, text=True, timeout=600)


def complete_steps(run_dir: Path) -> list[int]:
    ckpt = run_dir / "checkpoints"
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


def start_and_stop(run_dir: Path, sig: int, args=ARGS) -> subprocess.Popen:
    """Start `jaxrl train` with `args` and send `sig` once its first checkpoint is complete."""
    proc = subprocess.Popen([sys.executable, "-m", "jaxrl.cli", "train", "--out", str(run_dir), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not complete_steps(run_dir):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def read_until(proc: subprocess.Popen, text: str, timeout: float = 300) -> str:
    """stderr of `proc` (started with text=True, stderr=PIPE) up to and including `text`."""
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        assert proc.poll() is None and time.monotonic() < deadline, seen + proc.stderr.read()
        seen += os.read(proc.stderr.fileno(), 4096).decode()
    return seen


def final_run_item(run_dir: Path):
    info_step, _ = checkpoint.restore_info(run_dir / "checkpoints")
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager((run_dir / "checkpoints").absolute(),
                               options=ocp.CheckpointManagerOptions(create=False)) as manager:
        return info_step, manager.restore(info_step, args=ocp.args.Composite(run=ocp.args.StandardRestore()))["run"]


def metrics_without_timing(run_dir: Path) -> list[dict]:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return [{k: v for k, v in r.items() if k not in records.TIMING_COLUMNS} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    result = jaxrl("train", "--out", str(out), *ARGS)
    assert result.returncode == 0, result.stderr
    return out


def assert_same_run(a: Path, b: Path, updates: int = 600):
    step_a, run_a = final_run_item(a)
    step_b, run_b = final_run_item(b)
    assert step_a == step_b == updates
    leaves_a, leaves_b = jax.tree.leaves(run_a), jax.tree.leaves(run_b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bitwise: params, optimiser, env, keys, metrics
    assert metrics_without_timing(a) == metrics_without_timing(b)


def last_update(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    lines = path.read_text().splitlines() if path.is_file() else []
    return int(lines[-1].split(",", 2)[1]) if len(lines) > 1 else 0  # columns: seed, update, ...


def test_killed_at_two_random_points_and_resumed_is_bitwise_the_uninterrupted_run(uninterrupted, tmp_path):
    run = tmp_path / "killed"
    # Two kill points, anywhere after the first checkpoint (update 50): mid-chunk, mid-checkpoint-write, ...; the
    # second kills a resumed run. New points every run of the suite.
    points = sorted(np.random.default_rng().choice(np.arange(60, 590), 2, replace=False).tolist())
    command = ["train", "--out", str(run), *ARGS]
    for point in points:
        proc = subprocess.Popen([sys.executable, "-m", "jaxrl.cli", *command], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while last_update(run) < point and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.kill()
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before update {point}: {stderr[-2000:]}"
        assert json.loads((run / "metadata.json").read_text())["status"] == "running"  # no chance to say more
        command = ["resume", str(run), "--no-progress", "--eval-episodes", "0"]
    result = jaxrl(*command)
    assert result.returncode == 0, result.stderr
    assert_same_run(uninterrupted, run), f"killed at updates {points}"
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "finished" and len(meta["resumes"]) == 2


def test_sigterm_checkpoints_marks_preempted_and_resumes_exactly(uninterrupted, tmp_path, capsys):
    run = tmp_path / "preempted"
    proc = start_and_stop(run, signal.SIGTERM)
    stderr = proc.stderr.read()
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "preempted" and "SIGTERM" in meta["error"]
    assert f"jaxrl resume {run}" in stderr
    stopped_at = max(complete_steps(run))
    assert stopped_at < 600 and stopped_at % 2 == 0  # at a chunk boundary, not only at a multiple of 50
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert int(rows[-1]["update"]) == stopped_at  # metrics up to the checkpoint are on disk
    resume = subprocess.Popen([sys.executable, "-m", "jaxrl.cli", "resume", str(run), "--no-progress",
                               "--eval-episodes", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    read_until(resume, "compiling")
    # A second resume of the directory meanwhile is refused, naming the process that holds it.
    assert cli.main(["resume", str(run), "--no-progress", "--eval-episodes", "0"]) == 2
    refused = capsys.readouterr().err
    assert f"is in use by another jaxrl process (pid {resume.pid} on" in refused and len(refused.splitlines()) == 1
    _, stderr = resume.communicate(timeout=600)
    assert resume.returncode == 0, stderr
    assert_same_run(uninterrupted, run)


def test_resume_refuses_bad_input_and_overwrites_nothing(uninterrupted, tmp_path, capsys):
    def resume(*args) -> str:  # in this process: these errors are raised before anything compiles
        assert cli.main(["resume", *args]) == 2
        return capsys.readouterr().err

    assert "has finished; nothing to resume" in resume(str(uninterrupted))
    assert "is not a run directory: it has no config.yaml" in resume(str(tmp_path))
    # A run stopped part-way whose config.yaml was then edited in a static field.
    run = tmp_path / "edited"
    start_and_stop(run, signal.SIGKILL)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("num_envs: 8", "num_envs: 16"))
    err = resume(str(run))
    assert "config.yaml differs from the config checkpoint" in err and "num_envs: 8 -> 16" in err
    (run / "config.yaml").write_text(config)
    assert "num_steps cannot change on resume" in resume(str(run), "--set", "num_steps=32")
    # A damaged latest checkpoint is named; an earlier one can be chosen.
    steps = complete_steps(run)
    latest = run / "checkpoints" / str(steps[-1])
    for f in (latest / "run").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(b"\0" * f.stat().st_size)
    assert f"checkpoint {str(latest)!r} could not be read" in resume(str(run), "--no-progress", "--eval-episodes", "0")
    assert (run / "metadata.json").is_file() and json.loads((run / "metadata.json").read_text())["status"] != "finished"
    # A garbled metadata.json is named; the failed resume leaves the directory unlocked.
    (run / "metadata.json").write_text('{"status": "runn')
    assert resume(str(run)) == f"jaxrl resume: error: {str(run / 'metadata.json')!r} is damaged (not valid " \
                               f"JSON: Unterminated string starting at: line 1 column 12 (char 11)); " \
                               f"restore it from a copy\n"
    records.RunLock(run).release()


# `jaxrl` with SIGXFSZ ignored: a write past the file-size limit then fails with EFBIG, as on a full disk.
JAXRL_NO_SIGXFSZ = ("import signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
                    "from jaxrl.cli import main; sys.exit(main(sys.argv[1:]))")


def train_until_the_disk_fills(run, args, max_file_bytes):
    """`jaxrl train` in a subprocess whose files cannot grow past `max_file_bytes` once its first
    checkpoint is complete; returns the ended process and its stderr."""
    proc = subprocess.Popen([sys.executable, "-c", JAXRL_NO_SIGXFSZ, "train", "--out", str(run), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not complete_steps(run):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
    return proc, proc.communicate(timeout=120)[1]


def test_a_full_disk_is_a_clear_error_keeping_earlier_checkpoints_and_metrics(uninterrupted, tmp_path):
    run = tmp_path / "full"
    # After the first checkpoint no file may grow past 40 kB: metrics.csv still fits (~170 B per update), a
    # checkpoint does not.
    proc, stderr = train_until_the_disk_fills(run, ARGS, 40_000)
    assert proc.returncode == 2, stderr[-2000:]
    assert [line for line in stderr.splitlines() if line.startswith("jaxrl")] == [stderr.strip().splitlines()[-1]]
    assert "could not write checkpoint" in stderr
    assert "File too large" in stderr and "earlier checkpoints are intact" in stderr
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "failed" and "could not write checkpoint" in meta["error"]
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["update"]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) >= 50
    assert metrics_without_timing(run) == metrics_without_timing(uninterrupted)[:len(rows)]
    assert complete_steps(run) == [50]
    result = jaxrl("eval", str(run), "--episodes", "1")  # the earlier checkpoint restores
    assert result.returncode == 0 and "(checkpoint 50)" in result.stdout, result.stderr
    result = jaxrl("resume", str(run), "--no-progress", "--eval-episodes", "0")  # disk space is back
    assert result.returncode == 0, result.stderr
    assert_same_run(uninterrupted, run)


def test_when_the_status_cannot_be_written_either_the_first_failure_is_named_and_resume_recovers(tmp_path, capsys):
    run = tmp_path / "full"
    args = ["--set", "total_timesteps=51200", "--set", "updates_per_chunk=2", "--checkpoint-every", "10",
            "--no-progress", "--eval-episodes", "0"]  # 100 updates
    # A full disk: no file can grow past 500 bytes, metadata.json (~1 kB) included.
    proc, stderr = train_until_the_disk_fills(run, args, 500)
    assert proc.returncode == 2, stderr[-2000:]
    error = stderr.strip().splitlines()[-1]
    first, _, note = error.partition("; the run's status (failed) could not be recorded either: ")
    assert first.startswith("jaxrl train: error: could not write ") and "metadata.json" not in first, error
    assert "metadata.json" in note and "File too large" in note
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "running" and meta["pid"] == proc.pid and records.process_gone(meta)
    (run / ".metrics.csv.tmp").write_text("seed,upd")  # as a kill -9 during a write leaves it
    assert cli.main(["eval", str(run), "--episodes", "1"]) == 0  # the checkpoint restores; the record is stale
    assert f"run status: running, but its process (pid {proc.pid}) is gone; the run has not finished" \
        in capsys.readouterr().out
    assert cli.main(["resume", str(run), "--no-progress", "--eval-episodes", "0"]) == 0
    assert f"was still marked running, but its process (pid {proc.pid} on" in capsys.readouterr().err
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["resumes"][0]["previous_status"] == "running"
    assert [int(r["update"]) for r in csv.DictReader(open(run / "metrics.csv"))] == list(range(1, 101))
    assert not list(run.glob(".*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_checkpoint_directory_is_a_clear_error(tmp_path):
    run = tmp_path / "read-only"
    proc = subprocess.Popen([sys.executable, "-m", "jaxrl.cli", "train", "--out", str(run), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not complete_steps(run):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.002)
    os.chmod(run / "checkpoints", 0o555)
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        os.chmod(run / "checkpoints", 0o755)
    assert proc.returncode == 2 and "could not write checkpoint" in stderr, stderr[-2000:]
    assert complete_steps(run)[0] == 50 and len(list(csv.DictReader(open(run / "metrics.csv")))) >= 50
    result = jaxrl("eval", str(run), "--episodes", "1")
    assert result.returncode == 0, result.stderr
