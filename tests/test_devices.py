"""Multi-device and multi-process runs on forced CPU devices: same results as one device."""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from jaxrl import api, devices, records
from jaxrl.errors import JaxrlError

LOSSES = ("policy_loss", "value_loss", "entropy", "grad_norm", "approx_kl")


def forced_devices(n: int, cache: bool = False) -> dict:
    """A subprocess's environment with n CPU devices; with `cache`, the suite's compilation cache (the resume
    loads the program its run compiled)."""
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
            "JAXRL_COMPILE_CACHE": "1" if cache else "0"}


FOUR_DEVICES = r"""
import dataclasses, json, sys
from jaxrl import api, devices, loop
from jaxrl.algos import ppo
from jaxrl.cache import enable_compilation_cache
from jaxrl.config import hparams
from jaxrl.session import run_keys

def first_updates(config, n):
    program = ppo.make_program(config)
    layout = devices.plan(n, config.num_seeds, program.env_shards)
    _, metrics, _, _ = loop.run(program, run_keys(config.seed, config.num_seeds)[1], hparams(config), layout=layout)
    return layout.mode, {k: metrics[k][:, 0].tolist() for k in %(losses)r}

enable_compilation_cache()  # the suite's: `jaxrl resume` below loads what this run compiled
one = api.resolve_config("ppo", overrides=dict(total_timesteps=2 * 512, updates_per_chunk=2))
out = {"single run": [first_updates(one, 1)]}  # on 4 devices: the run below (its first update is the same)
four = dataclasses.replace(one, num_seeds=4)
out["four seeds"] = [first_updates(four, 1), first_updates(four, 4)]

# a run whose envs are split over 4 devices, resumed from a checkpoint into the same layout
config = dataclasses.replace(one, total_timesteps=4 * 512, updates_per_chunk=1)
api.train(config, out=sys.argv[1], progress=False, eval_episodes=0, checkpoint_every=1, keep_checkpoints=4)
print(json.dumps(out))
""" % {"losses": LOSSES}


@pytest.mark.timeout(400)
def test_four_cpu_devices_match_one_device_and_resume_exactly(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", FOUR_DEVICES, str(run)], capture_output=True, text=True,
                          env=forced_devices(4, cache=True), timeout=380)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    (mode1, one), (mode4, four) = out["four seeds"]
    assert (mode1, mode4) == ("single", "runs")
    for k in LOSSES:  # data parallel: the same minibatches, sums in another order
        np.testing.assert_allclose(four[k], one[k], rtol=1e-5, err_msg=f"four seeds: {k}")
    # The single run on 4 devices is the recorded run, its envs split over the devices; its first update (the lr
    # not yet annealed) is that of the 2-update run on one device.
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["devices"], meta["device_layout"], meta["processes"]) == (4, "envs", 1)
    [(mode1, one)] = out["single run"]
    first_row = next(csv.DictReader(open(run / "metrics.csv")))
    assert mode1 == "single" and first_row["update"] == "1"
    for k in LOSSES:
        np.testing.assert_allclose(float(first_row[k]), one[k][0], rtol=1e-5, err_msg=f"single run: {k}")

    before = (run / "metrics.csv").read_text()
    meta["status"] = "interrupted"  # as if stopped after the last checkpoint; resume from update 2
    (run / "metadata.json").write_text(json.dumps(meta))
    proc = subprocess.run([sys.executable, "-m", "jaxrl.cli", "resume", str(run), "--from-checkpoint", "2",
                           "--no-progress", "--eval-episodes", "0"], capture_output=True, text=True,
                          env=forced_devices(4, cache=True), timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    strip = lambda text: [{k: v for k, v in row.items() if k not in records.TIMING_COLUMNS}
                          for row in csv.DictReader(text.splitlines())]
    assert strip((run / "metrics.csv").read_text()) == strip(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~55 s on 2 cores, cold: the four-device test above keeps multi-device layouts in the default run
@pytest.mark.timeout(300)
def test_two_processes_of_two_devices_match_one_device(tmp_path):
    run, port = tmp_path / "run", free_port()
    args = ["--total-timesteps", "2048", "--no-progress", "--eval-episodes", "0", "--out", str(run),
            "--coordinator", f"localhost:{port}", "--num-processes", "2"]
    procs = [subprocess.Popen([sys.executable, "-m", "jaxrl.cli", "train", *args, "--process-id", str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=forced_devices(2))
             for i in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert "run directory" in outputs[0][0] and "run directory" not in outputs[1][0]  # process 0 reports
    meta = json.loads((run / "metadata.json").read_text())
    assert (meta["devices"], meta["device_layout"], meta["processes"]) == (4, "envs", 2)
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert len(rows) == 4

    config = api.resolve_config("ppo", overrides={"total_timesteps": 2048})
    single = api.train(config, record=False, progress=False, eval_episodes=0)
    for k in LOSSES:
        np.testing.assert_allclose(float(rows[0][k]), single.metrics[k][0, 0], rtol=1e-5, err_msg=k)


def test_more_devices_than_exist_is_one_clear_error(tmp_path):
    with pytest.raises(JaxrlError, match=r"--devices 3: only 1 cpu device\(s\) available"):
        devices.plan(3, 1, 8)
    proc = subprocess.run([sys.executable, "-m", "jaxrl.cli", "train", "--devices", "3", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "only 1 cpu device(s) available" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_layouts_and_distributed_flags_fail_before_compiling():
    with pytest.raises(JaxrlError, match="--devices 0: must be >= 1"):
        devices.plan(0, 1, 8)
    with pytest.raises(JaxrlError, match="needs --num-processes and --process-id"):
        devices.initialize("localhost:1234", None, None)
    with pytest.raises(JaxrlError, match="--process-id 2 must be in 0..1"):
        devices.initialize("localhost:1234", 2, 2)
    with pytest.raises(JaxrlError, match="need --coordinator"):
        devices.initialize(None, 2, 0)
