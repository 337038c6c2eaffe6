from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxrl import checkpoint
from jaxrl.algos import ppo
from jaxrl.config import hparams
from jaxrl.errors import JaxrlError


def test_save_restore_round_trip(tmp_path):
    config = ppo.Config(total_timesteps=2048, normalize_obs=True)
    program = ppo.make_program(config)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(2))
    state = jax.vmap(program.init, in_axes=(0, None))(keys, hparams(config))
    policy = ppo.policy_state(state)
    checkpoint.save(tmp_path / "ckpt", 7, state, policy)
    step, restored = checkpoint.restore_policy(tmp_path / "ckpt")
    assert step == 7
    for a, b in zip(jax.tree.leaves(policy), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(policy) == jax.tree.structure(restored)
    with pytest.raises(JaxrlError, match="no checkpoint 3"):
        checkpoint.restore_policy(tmp_path / "ckpt", 3)
    with pytest.raises(JaxrlError, match="no checkpoint found"):
        checkpoint.restore_policy(tmp_path / "nothing")


@struct.dataclass
class Inner:
    empty: jax.Array
    count: jax.Array


@struct.dataclass
class Outer:
    inner: Inner
    done: jax.Array
    key: jax.Array


def synthetic_run(rng):
    """A pytree like an env state: nested dataclasses; zero-size, int, bool, uint32 and float leaves."""
    return {"state": Outer(Inner(np.zeros((2, 0, 3), np.float32), rng.integers(-9, 9, (2,), np.int32)),
                           rng.integers(0, 2, (2, 4)).astype(bool), rng.integers(0, 2**32, (2, 2), np.uint32)),
            "contacts": np.zeros((0,), np.int32), "steps": (np.int32(7), rng.standard_normal(5).astype(np.float32)),
            "noise": rng.integers(0, 256, 4096, np.uint8)}


def assert_bitwise_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert (x.shape, x.dtype, x.tobytes()) == (y.shape, y.dtype, y.tobytes())


def test_any_pytree_round_trips_zero_size_int_bool_leaves_and_nested_dataclasses(tmp_path):
    run = synthetic_run(np.random.default_rng(0))
    policy = {"params": {"w": np.ones((3, 2), np.float32)}, "count": np.int64(5), "mask": np.array([True, False])}
    checkpoint.save(tmp_path, 1, run, policy)
    restored = checkpoint.restore_run(tmp_path, 1, jax.tree.map(np.zeros_like, run))
    assert_bitwise_equal(restored, run)
    assert type(restored["state"].inner) is Inner
    assert_bitwise_equal(checkpoint.restore_policy(tmp_path)[1], policy)


def flip_bytes(path: Path, at: int, count: int = 64) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + count] = bytes(b ^ 0xFF for b in data[at:at + count])
    path.write_bytes(bytes(data))


def flip_in_array_data(item_dir: Path, array: np.ndarray) -> None:
    """Flip bytes of `array` where orbax stored them verbatim (random bytes do not compress: zstd keeps
    them raw), so the files still decode: only the checksum can tell."""
    needle = array.tobytes()[1000:1064]
    (path,) = [f for f in item_dir.rglob("*") if f.is_file() and needle in f.read_bytes()]
    flip_bytes(path, path.read_bytes().index(needle))


def test_a_damaged_array_is_a_clear_error_naming_the_earlier_intact_checkpoints(tmp_path):
    run = synthetic_run(np.random.default_rng(0))
    policy = {"noise": run["noise"]}
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, run, policy)
    flip_in_array_data(tmp_path / "3" / "run", run["noise"])
    flip_in_array_data(tmp_path / "3" / "policy", policy["noise"])
    flip_in_array_data(tmp_path / "1" / "policy", policy["noise"])
    target = jax.tree.map(np.zeros_like, run)
    with pytest.raises(JaxrlError) as err:
        checkpoint.restore_run(tmp_path, 3, target, flag="--from-checkpoint {}")
    assert str(err.value) == (f"checkpoint {str(tmp_path / '3')!r} is damaged: 1 array(s) differ from the checksums "
                              f"written with it (run/noise); earlier intact checkpoints: [1, 2], use one with "
                              f"--from-checkpoint 2")
    with pytest.raises(JaxrlError, match=r"\(policy/noise\); earlier intact checkpoints: \[2\], use one with "
                                         r"--checkpoint 2$"):
        checkpoint.restore_policy(tmp_path, flag="--checkpoint {}")
    assert_bitwise_equal(checkpoint.restore_run(tmp_path, 2, target), run)


def test_checkpoints_without_checksums_still_load(tmp_path):
    """As jaxrl wrote them before checksums: no verification, the arrays as stored."""
    import orbax.checkpoint as ocp

    run, policy = {"x": np.arange(3, dtype=np.int32)}, {"w": np.ones(2, np.float32)}
    with ocp.CheckpointManager(tmp_path) as manager:
        manager.save(4, args=ocp.args.Composite(run=ocp.args.StandardSave(run), policy=ocp.args.StandardSave(policy),
                                                info=ocp.args.JsonSave({"format": checkpoint.FORMAT, "step": 4})))
    assert_bitwise_equal(checkpoint.restore_run(tmp_path, 4, {"x": np.zeros(3, np.int32)}), run)
    assert_bitwise_equal(checkpoint.restore_policy(tmp_path)[1], policy)


def test_a_failed_write_names_the_earlier_checkpoints_only_when_there_are_some(tmp_path, monkeypatch):
    ckpt = checkpoint.Checkpointer(tmp_path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    try:
        with monkeypatch.context() as patch:
            patch.setattr(ckpt.manager, "save", disk_full)
            with pytest.raises(JaxrlError, match=r"could not write checkpoint 1 to .*: OSError: \[Errno 28\] No space "
                                                 r"left on device; no earlier checkpoint exists$"):
                ckpt.save(1, {"x": np.ones(2)}, {"w": np.ones(2)}, {})
        ckpt.save(1, {"x": np.ones(2)}, {"w": np.ones(2)}, {})
        ckpt.save(2, {"x": np.ones(2)}, {"w": np.ones(2)}, {})
        monkeypatch.setattr(ckpt.manager, "save", disk_full)
        with pytest.raises(JaxrlError, match=r"; earlier checkpoints are intact: \[1, 2\]$"):
            ckpt.save(3, {"x": np.ones(2)}, {"w": np.ones(2)}, {})
    finally:
        ckpt.close()
