"""Every env family trains from the CLI with checkpoints on, evaluates and resumes; every brax env's
state survives a checkpoint (brax states hold zero-size, int and bool arrays in nested dataclasses)."""

import json

import jax
import numpy as np
import pytest

from jaxrl import checkpoint, envs, records
from jaxrl.cli import main
from jaxrl.envs import brax_adapter
from test_checkpoint import assert_bitwise_equal

# Three updates of a tiny program, one per chunk, a checkpoint after each.
TINY = {"num_envs": 2, "num_steps": 8, "num_minibatches": 1, "update_epochs": 1, "updates_per_chunk": 1,
        "total_timesteps": 48}
# One id of each source in jaxrl.envs.registry, with an algorithm that trains it; the default run keeps
# CartPole (the suite's time budget), `-m slow` runs them all.
FAMILIES = [pytest.param(algo, env, {}, id=env, marks=[] if env == "gymnax:CartPole-v1" else pytest.mark.slow)
            for algo, env in [("ppo", "gymnax:CartPole-v1"),
                              ("ppo", "brax:fast"),  # compiles in seconds, the other brax envs in minutes:
                              ("ippo", "jaxmarl:MPE_simple_v3"),  # their states are checked below
                              ("ppo", "jaxrl:probe-action")]]


def run_item(checkpoints, step):
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(checkpoints.absolute(), options=ocp.CheckpointManagerOptions(create=False)) as manager:
        return manager.restore(step, args=ocp.args.Composite(run=ocp.args.StandardRestore()))["run"]


def metrics_without_timing(run_dir):
    return [{k: v for k, v in row.items() if k not in records.TIMING_COLUMNS}
            for row in records.read_metrics(run_dir / "metrics.csv")]


ZSTD_MAGIC = bytes.fromhex("28b52ffd")


def flip_array_data(item_dir):
    """Flip 64 bytes in the largest array data file of a checkpoint item: zstd frames written by
    tensorstore inside orbax's OCDBT store, which has no checksum of its own for them (its b-tree
    nodes, files starting 0x0cdb20de, have one)."""
    data_files = [f for f in item_dir.rglob("*") if f.is_file() and f.read_bytes()[:4] == ZSTD_MAGIC]
    path = max(data_files, key=lambda f: f.stat().st_size)
    data = bytearray(path.read_bytes())
    data[1024:1088] = bytes(b ^ 0xFF for b in data[1024:1088])  # inside the first array's frame
    path.write_bytes(bytes(data))


def train_eval_resume(run_dir, capfd, algo: str, env: str, settings: dict):
    """`jaxrl train` 3 updates and `jaxrl eval`; bytes flipped in checkpoint 3 are refused by `jaxrl resume`
    and `jaxrl eval` naming checkpoint 2, and `jaxrl resume --from-checkpoint 2` (the run marked preempted,
    as SIGTERM leaves it) ends bitwise where the run ended before."""
    sets = [f"--set={k}={json.dumps(v)}" for k, v in {**TINY, **settings}.items()]
    quiet = ["--no-progress", "--eval-episodes", "0"]
    ckpt = run_dir / "checkpoints"
    assert main(["train", "--algo", algo, "--env", env, *sets, "--out", str(run_dir), "--checkpoint-every", "1",
                 *quiet]) == 0, capfd.readouterr().err
    assert checkpoint.steps(ckpt) == [1, 2, 3]
    assert main(["eval", str(run_dir), "--episodes", "1"]) == 0, capfd.readouterr().err
    assert "(checkpoint 3)" in capfd.readouterr().out
    final, metrics = run_item(ckpt, 3), metrics_without_timing(run_dir)

    meta = json.loads((run_dir / "metadata.json").read_text())
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "status": "preempted"}))
    flip_array_data(ckpt / "3" / "run")
    flip_array_data(ckpt / "3" / "policy")
    for command, flag in ((["resume", str(run_dir), *quiet], "--from-checkpoint"),
                          (["eval", str(run_dir), "--episodes", "1"], "--checkpoint")):
        assert main(command) == 2
        # one line of jaxrl's (brax's construction warns on stderr too)
        (error,) = [line for line in capfd.readouterr().err.splitlines() if line.startswith("jaxrl ")]
        assert f"checkpoint {str(ckpt / '3')!r} " in error and ("is damaged" in error or "could not be read" in error)
        assert error.endswith(f"earlier intact checkpoints: [1, 2], use one with {flag} 2"), error

    assert main(["resume", str(run_dir), "--from-checkpoint", "2", *quiet]) == 0, capfd.readouterr().err
    assert_bitwise_equal(run_item(ckpt, 3), final)
    assert metrics_without_timing(run_dir) == metrics


@pytest.mark.timeout(240)
@pytest.mark.parametrize("algo,env,settings", FAMILIES)
def test_every_env_family_trains_evaluates_and_resumes_with_checkpoints(tmp_path, capfd, algo, env, settings):
    train_eval_resume(tmp_path / "run", capfd, algo, env, settings)


def test_every_family_is_covered():
    covered = {f.values[1].split(":")[0] for f in FAMILIES}
    assert covered == set(envs.registry._SOURCES)


# The adapter's static list (tests/test_user_facing.py checks it against brax's registry); brax:swimmer,
# broken in brax itself, is refused instead (brax_adapter.UNAVAILABLE).
BRAX = [f"brax:{name}" for name in brax_adapter.IDS]


def random_like(shape_dtype, rng):
    """Random bytes viewed as `shape_dtype` (bools: 0 or 1)."""
    shape, dtype = shape_dtype.shape, np.dtype(shape_dtype.dtype)
    if dtype == bool:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 256, (*shape, dtype.itemsize), np.uint8).view(dtype).reshape(shape)


def test_a_broken_brax_env_is_refused_in_one_line(capfd):
    assert main(["train", "--env", "brax:swimmer", "--no-progress"]) == 2
    (error,) = [line for line in capfd.readouterr().err.splitlines() if line.startswith("jaxrl ")]
    assert "brax:swimmer is unavailable here: brax 0.14's fluid model" in error


# inverted_pendulum and ant hold zero-size arrays in their states (contacts); `-m slow` checks every brax env.
@pytest.mark.parametrize("env_id", [e if e in ("brax:inverted_pendulum", "brax:ant") else
                                    pytest.param(e, marks=pytest.mark.slow) for e in BRAX])
def test_brax_reset_state_round_trips_through_a_checkpoint(tmp_path, env_id):
    env = envs.make(env_id)
    obs, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0), env.default_params)
    rng = np.random.default_rng(0)
    written = jax.tree.map(lambda s: random_like(s, rng), {"env_state": state})
    checkpoint.save(tmp_path, 1, written, {"obs": random_like(obs, rng)})
    target = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), {"env_state": state})
    assert_bitwise_equal(checkpoint.restore_run(tmp_path, 1, target), written)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("env", BRAX)
def test_every_brax_env_trains_evaluates_and_resumes_with_checkpoints(tmp_path, capfd, env):
    train_eval_resume(tmp_path / "run", capfd, "ppo", env, {})
