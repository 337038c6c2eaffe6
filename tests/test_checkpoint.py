import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
