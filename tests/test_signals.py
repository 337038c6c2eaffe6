"""SIGTERM/SIGINT while a run compiles or runs: the process ends cleanly with 128 + signum, soon."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from jaxrl.preemption import PreemptionGuard

# A fresh compile (no persistent cache) of a small PPO program: a few seconds, the window for the signals.
TRAIN = ["train", "--no-compile-cache", "--total-timesteps", "2048", "--set", "num_envs=4", "--set", "num_steps=64",
         "--eval-episodes", "0"]
CRASH_SIGNS = ("LLVM ERROR", "Fatal", "Traceback", "Segmentation", "core dumped")


def read_until(proc: subprocess.Popen, text: str, timeout: float = 120) -> str:
    """stderr of `proc` up to and including `text`."""
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        assert proc.poll() is None and time.monotonic() < deadline, seen + proc.stderr.read().decode()
        seen += os.read(proc.stderr.fileno(), 4096).decode()
    return seen


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig, times", [(signal.SIGTERM, 1), pytest.param(signal.SIGTERM, 2, marks=pytest.mark.slow),
                                        (signal.SIGINT, 2)],
                         ids=["SIGTERM", "SIGTERM-twice", "SIGINT-twice"])
def test_a_signal_while_compiling_stops_at_once(tmp_path, sig, times):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "jaxrl.cli", *TRAIN, "--out", str(run)], stderr=subprocess.PIPE)
    stderr = read_until(proc, "compiling")
    sent = time.monotonic()
    for _ in range(times):
        proc.send_signal(sig)
        time.sleep(0.05)
    stderr += proc.communicate(timeout=60)[1].decode()
    elapsed = time.monotonic() - sent
    assert proc.returncode == 128 + sig, stderr
    assert not any(sign in stderr for sign in CRASH_SIGNS), stderr
    assert elapsed < 5, f"{elapsed:.1f} s after the signal"  # the compile alone takes longer
    name = signal.Signals(sig).name
    assert f"stopped by {name} while compiling, before any update ran" in stderr
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["status"] == "preempted" and "while compiling" in meta["error"] and meta["end_time"]
    assert not (run / "checkpoints").is_dir() or not any((run / "checkpoints").iterdir())


# A guard with handlers set, in a process of its own: the second signal ends it at once, after `on_abort`.
SECOND_SIGNAL = """
import os, signal, sys, time
from jaxrl.preemption import PreemptionGuard

def on_abort(status, message):
    print("recorded", status, flush=True)
    return message + "; resume with: ..."

with PreemptionGuard(on_abort) as guard:
    os.kill(os.getpid(), signal.SIGTERM)
    while not guard.requested:
        time.sleep(0.01)
    print("first signal: stop requested", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
sys.exit(0)
"""


@pytest.mark.timeout(60)
def test_a_second_signal_ends_the_process_at_once_after_recording_the_status():
    result = subprocess.run([sys.executable, "-c", SECOND_SIGNAL], capture_output=True, text=True, timeout=30)
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stdout.splitlines() == ["first signal: stop requested", "recorded interrupted"]
    assert "aborted at once by a second SIGTERM; resume with: ..." in result.stderr


def test_interruptible_runs_the_call_in_a_worker_thread_and_passes_on_its_result_and_errors():
    before = signal.getsignal(signal.SIGTERM)
    with PreemptionGuard() as guard:
        assert guard.interruptible(threading.current_thread) is not threading.main_thread()
        with pytest.raises(ValueError, match="bad"):
            guard.interruptible(lambda: int("bad"))
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored


def test_outside_the_main_thread_the_guard_sets_no_handler_and_calls_directly():
    seen = []

    def body():
        with PreemptionGuard() as guard:
            seen.append((guard.interruptible(threading.current_thread), signal.getsignal(signal.SIGTERM)))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()
    assert seen == [(worker, signal.getsignal(signal.SIGTERM))]
