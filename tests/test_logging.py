"""Logging integrations: TensorBoard event files, Weights & Biases offline runs, per-chunk callbacks and
metrics.csv's wall_time, for a run and for its resume."""

import importlib.util
import json
import re
import shutil

import numpy as np
import pytest

from jaxrl import api, cli, records
from jaxrl.algos import ppo
from jaxrl.cache import enable_compilation_cache
from jaxrl.errors import JaxrlError

# 8 updates of 4 envs x 64 steps, 2 seeds, in chunks of 2 updates (as tests/test_resume_edits_and_api.py:
# the same program, so the compilation cache serves both).
TINY = dict(env="gymnax:CartPole-v1", total_timesteps=2048, num_envs=4, num_steps=64, hidden_sizes=(16,),
            updates_per_chunk=2, num_seeds=2)
HAS_WANDB = importlib.util.find_spec("wandb") is not None
LOG = ["tensorboard", "wandb"] if HAS_WANDB else ["tensorboard"]
needs_wandb = pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (pip install 'jaxrl[wandb]')")


@pytest.fixture(scope="module", autouse=True)
def wandb_offline(tmp_path_factory):
    """W&B offline, its settings and caches in a temporary directory, not the user's."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("WANDB_MODE", "offline")
        m.delenv("WANDB_DIR", raising=False)  # the run directory, as by default
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            m.setenv(name, str(home / name.lower()))
        m.setenv("WANDB_SILENT", "true")
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory, wandb_offline):
    enable_compilation_cache()  # as the jaxrl command does: the resumed run of the same program loads it
    chunks = []
    out = tmp_path_factory.mktemp("runs") / "run"
    result = api.train(ppo.Config(**TINY), out=str(out), progress=False, eval_episodes=0, checkpoint_every=2,
                       keep_checkpoints=4, log=LOG, callbacks=[chunks.append])
    return result, chunks


def csv_rows(run_dir):
    return records.read_metrics(run_dir / "metrics.csv")


def tensorboard_scalars(logdir, tag):
    """{env step: value} of scalar `tag` as TensorBoard reads the event files in `logdir`."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    reader = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    reader.Reload()
    events = reader.Scalars(tag)
    steps = [e.step for e in events]
    assert len(steps) == len(set(steps)), f"{tag}: a step read twice: {steps}"
    return {e.step: e.value for e in events}


def wandb_values(data: bytes, key: str) -> list[float]:
    """The values written under `key`, in order, in a W&B transaction log (run-<id>.wandb): its history and
    summary items are protobuf messages holding the key (field 2) and the value as JSON (field 16) as text."""
    pattern = re.escape(key.encode()) + rb"\x82\x01([\x00-\x7f])"
    return [float(data[m.end():m.end() + m[1][0]]) for m in re.finditer(rb"\x12[\x00-\x7f]" + pattern, data)]


def expected(rows, seed, column):
    return {int(r["env_steps"]): float(r[column]) for r in rows if int(r["seed"]) == seed and r[column] != ""}


@pytest.mark.timeout(120)
def test_tensorboard_event_files_hold_every_seeds_returns_at_their_env_steps(run):
    result, _ = run
    rows = csv_rows(result.run_dir)
    for seed in (0, 1):
        want = expected(rows, seed, "episode_return")
        assert len(want) == 8
        got = tensorboard_scalars(result.run_dir / "tensorboard" / f"seed_{seed}", "episode_return")
        assert sorted(got) == sorted(want) == [256 * u for u in range(1, 9)]
        np.testing.assert_allclose([got[s] for s in sorted(got)], [want[s] for s in sorted(want)], rtol=1e-6)


@needs_wandb
@pytest.mark.timeout(120)
def test_a_wandb_offline_run_directory_is_written_with_the_metrics(run):
    result, _ = run
    meta = json.loads((result.run_dir / "metadata.json").read_text())
    assert meta["log"] == LOG and len(meta["wandb_runs"]) == 1
    run_id = meta["wandb_runs"][0]
    [offline] = (result.run_dir / "wandb").glob(f"offline-run-*-{run_id}")
    data = (offline / f"run-{run_id}.wandb").read_bytes()
    for seed in (0, 1):
        want = expected(csv_rows(result.run_dir), seed, "episode_return")
        assert in_order([want[s] for s in sorted(want)], wandb_values(data, f"seed_{seed}/episode_return"))
    assert in_order([256.0 * u for u in range(1, 9)], wandb_values(data, "env_steps"))


def in_order(values, seen) -> bool:
    """Whether `values` occur in `seen` in this order (each summary of the latest value may repeat one)."""
    rest = iter(seen)
    return all(v in rest for v in values)


@pytest.mark.timeout(120)
def test_callbacks_get_every_chunk_with_its_metric_rows(run):
    result, chunks = run
    assert [c.report.done for c in chunks] == [2, 4, 6, 8]
    assert all(c.run_dir == result.run_dir for c in chunks)
    rows = [row for c in chunks for row in c.rows]
    assert [{k: str(v) for k, v in row.items()} for row in rows] == csv_rows(result.run_dir)


@pytest.mark.timeout(120)
def test_wall_time_counts_up_from_the_start_of_the_run(run):
    result, _ = run
    for seed in (0, 1):
        times = [float(r["wall_time"]) for r in csv_rows(result.run_dir) if int(r["seed"]) == seed]
        assert len(times) == 8 and 0 < times[0] and np.all(np.diff(times) >= 0)
        assert times[-1] <= result.summary["wall_s"]


@pytest.mark.timeout(120)
def test_a_resumed_run_logs_on_without_losing_or_repeating_steps(run, tmp_path):
    """As if killed after update 8 with its last complete checkpoint at 4: the steps 5-8 logged by the
    killed process are computed again; TensorBoard reads each step once, with the resumed values."""
    result, _ = run
    run_dir = tmp_path / "run"
    shutil.copytree(result.run_dir, run_dir)
    meta = json.loads((run_dir / "metadata.json").read_text())
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    wall_at_4 = [float(r["wall_time"]) for r in csv_rows(run_dir) if r["update"] == "4"]
    chunks = []
    api.resume(run_dir, from_checkpoint=4, progress=False, eval_episodes=0, callbacks=[chunks.append])

    assert [c.report.done for c in chunks] == [6, 8]
    rows = csv_rows(run_dir)
    for seed in (0, 1):
        got = tensorboard_scalars(run_dir / "tensorboard" / f"seed_{seed}", "episode_return")
        want = expected(rows, seed, "episode_return")
        assert sorted(got) == sorted(want) == [256 * u for u in range(1, 9)]
        np.testing.assert_allclose([got[s] for s in sorted(got)], [want[s] for s in sorted(want)], rtol=1e-6)
        assert len(list((run_dir / "tensorboard" / f"seed_{seed}").glob("events.out.tfevents.*"))) == 2
        times = [float(r["wall_time"]) for r in rows if int(r["seed"]) == seed]
        assert np.all(np.diff(times) >= 0) and times[4] > wall_at_4[seed]  # update 5 continues from update 4
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["log"] == LOG
    if HAS_WANDB:  # a new W&B run that names the one before
        first, second = meta["wandb_runs"]
        [offline] = (run_dir / "wandb").glob(f"offline-run-*-{second}")
        data = (offline / f"run-{second}.wandb").read_bytes()
        assert b"resumed_from" in data and first.encode() in data


def test_loggers_are_checked_before_a_run_starts(tmp_path, capsys, monkeypatch):
    with pytest.raises(JaxrlError, match=r"log=mlflow: unknown logger; valid: tensorboard, wandb"):
        api.train(ppo.Config(**TINY), out=str(tmp_path / "a"), log="tensorboard,mlflow")
    with pytest.raises(JaxrlError, match="needs record=True"):
        api.train(ppo.Config(**TINY), record=False, log=["tensorboard"])
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # as if not installed
    assert cli.main(["train", "--log", "wandb", "--out", str(tmp_path / "b")]) == 2
    assert "jaxrl train: error: log=wandb needs the wandb package: pip install 'jaxrl[wandb]'" \
        in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.timeout(120)
def test_a_run_recorded_before_wall_time_existed_resumes_with_the_column_empty_and_a_logger_added(run, tmp_path):
    result, _ = run
    run_dir = tmp_path / "old"
    shutil.copytree(result.run_dir, run_dir)
    meta = json.loads((run_dir / "metadata.json").read_text())
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted", "log": []}))
    records.write_csv(run_dir / "metrics.csv", [{k: v for k, v in r.items() if k != "wall_time"}
                                                for r in csv_rows(run_dir)])
    api.resume(run_dir, from_checkpoint=6, progress=False, eval_episodes=0, log="tensorboard")  # a logger added
    assert json.loads((run_dir / "metadata.json").read_text())["log"] == ["tensorboard"]
    rows = csv_rows(run_dir)
    assert [int(r["update"]) for r in rows if r["seed"] == "0"] == list(range(1, 9))
    assert {r["wall_time"] for r in rows} == {""}  # not counted from the resume as if the run started there
