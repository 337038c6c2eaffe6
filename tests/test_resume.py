"""Durable runs: a run killed (SIGKILL) or preempted (SIGTERM) and resumed equals the run never stopped."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxrl import checkpoint

# 600 updates of 512 env steps in chunks of 2, a checkpoint every 50 updates: long enough (~2 s of
# training) to stop it part-way, short enough for CI.
ARGS = ["--set", "total_timesteps=307200", "--set", "updates_per_chunk=2", "--checkpoint-every", "50",
        "--no-progress", "--eval-episodes", "0"]


def jaxrl(*args):
    return subprocess.run([sys.executable, "-m", "jaxrl.cli", *args], capture_output=True, text=True, timeout=600)


def complete_steps(run_dir: Path) -> list[int]:
    ckpt = run_dir / "checkpoints"
    return sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) if ckpt.is_dir() else []


def start_and_stop(run_dir: Path, sig: int) -> subprocess.Popen:
    """Start `jaxrl train` and send `sig` once its first checkpoint is complete."""
    proc = subprocess.Popen([sys.executable, "-m", "jaxrl.cli", "train", "--out", str(run_dir), *ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not complete_steps(run_dir):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


def final_run_item(run_dir: Path):
    info_step, _ = checkpoint.restore_info(run_dir / "checkpoints")
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager((run_dir / "checkpoints").absolute(),
                               options=ocp.CheckpointManagerOptions(create=False)) as manager:
        return info_step, manager.restore(info_step, args=ocp.args.Composite(run=ocp.args.StandardRestore()))["run"]


def metrics_without_timing(run_dir: Path) -> list[dict]:
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    return [{k: v for k, v in r.items() if k != "steps_per_second"} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    result = jaxrl("train", "--out", str(out), *ARGS)
    assert result.returncode == 0, result.stderr
    return out


def assert_same_run(a: Path, b: Path):
    step_a, run_a = final_run_item(a)
    step_b, run_b = final_run_item(b)
    assert step_a == step_b == 600
    leaves_a, leaves_b = jax.tree.leaves(run_a), jax.tree.leaves(run_b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # bitwise: params, optimiser, env, keys, metrics
    assert metrics_without_timing(a) == metrics_without_timing(b)


def test_sigkill_then_resume_is_bitwise_the_uninterrupted_run(uninterrupted, tmp_path):
    run = tmp_path / "killed"
    proc = start_and_stop(run, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    killed_at = complete_steps(run)
    assert killed_at and max(killed_at) < 600
    assert json.loads((run / "metadata.json").read_text())["status"] == "running"  # it had no chance to say more
    result = jaxrl("resume", str(run), "--no-progress", "--eval-episodes", "0")
    assert result.returncode == 0, result.stderr
    assert f"resumed after update {max(killed_at)}" in result.stdout
    assert_same_run(uninterrupted, run)
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["resumes"][0]["from_update"] == max(killed_at)


def test_sigterm_checkpoints_marks_preempted_and_resumes_exactly(uninterrupted, tmp_path):
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
    result = jaxrl("resume", str(run), "--no-progress", "--eval-episodes", "0")
    assert result.returncode == 0, result.stderr
    assert_same_run(uninterrupted, run)


def test_resume_refuses_bad_input_and_overwrites_nothing(uninterrupted, tmp_path):
    result = jaxrl("resume", str(uninterrupted))
    assert result.returncode == 2 and "has finished; nothing to resume" in result.stderr
    result = jaxrl("resume", str(tmp_path))
    assert result.returncode == 2 and "is not a run directory: it has no config.yaml" in result.stderr
    # A run stopped part-way whose config.yaml was then edited in a static field.
    run = tmp_path / "edited"
    start_and_stop(run, signal.SIGKILL)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("num_envs: 8", "num_envs: 16"))
    result = jaxrl("resume", str(run))
    assert result.returncode == 2
    assert "config.yaml differs from the config checkpoint" in result.stderr and "num_envs: 8 -> 16" in result.stderr
    (run / "config.yaml").write_text(config)
    result = jaxrl("resume", str(run), "--set", "num_steps=32")
    assert result.returncode == 2 and "num_steps cannot change on resume" in result.stderr
    # A damaged latest checkpoint is named; an earlier one can be chosen.
    steps = complete_steps(run)
    latest = run / "checkpoints" / str(steps[-1])
    for f in (latest / "run").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(b"\0" * f.stat().st_size)
    result = jaxrl("resume", str(run), "--no-progress", "--eval-episodes", "0")
    assert result.returncode == 2 and f"checkpoint {str(latest)!r} could not be read" in result.stderr
    assert (run / "metadata.json").is_file() and json.loads((run / "metadata.json").read_text())["status"] != "finished"
