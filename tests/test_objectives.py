"""Learned PPO objectives: PPO's clipped surrogate as a drift, and a learned drift's guarantees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.algos import ppo
from jaxrl.config import ConfigError, hparams, stacked_hparams
from jaxrl.losses import (DRIFT_HIDDEN, drift_params, learned_drift, load_drift, ppo_drift, ppo_policy_loss,
                          save_drift)


def test_ppo_drift_reproduces_the_clipped_surrogate_and_its_gradients():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    old = jax.random.normal(keys[0], (512,))
    new = old + 0.4 * jax.random.normal(keys[1], (512,))
    adv = jax.random.normal(keys[2], (512,)) * 2.0

    def drift_loss(log_prob):
        ratio = jnp.exp(log_prob - old)
        return -jnp.mean(ratio * adv - ppo_drift(ratio, adv, 0.2))

    clipped = lambda log_prob: ppo_policy_loss(log_prob, old, adv, 0.2)[0]
    np.testing.assert_allclose(drift_loss(new), clipped(new), atol=1e-6)
    np.testing.assert_allclose(jax.grad(drift_loss)(new), jax.grad(clipped)(new), atol=1e-6)


@pytest.mark.parametrize("objective", ["lpo", "ta_lpo"])
def test_a_random_learned_drift_is_non_negative_and_flat_at_ratio_one(objective):
    shapes = drift_params(objective)
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    phi = {"w1": jax.random.normal(k1, shapes["w1"].shape), "w2": jax.random.normal(k2, shapes["w2"].shape)}
    r, adv = jnp.meshgrid(jnp.linspace(0.5, 1.5, 101), jnp.linspace(-3.0, 3.0, 61))
    drift = learned_drift(phi, jnp.log(r), adv, 0.2, progress=0.3)
    assert float(drift.min()) >= 0.0
    assert float(jnp.abs(drift).max()) > 0.1  # not trivially zero: the random MLP does move it
    at_one = lambda log_r: learned_drift(phi, log_r, adv[:, 0], 0.2, progress=0.7).sum()
    assert float(jnp.abs(learned_drift(phi, jnp.zeros(61), adv[:, 0], 0.2, 0.7)).max()) == 0.0
    assert float(jnp.abs(jax.grad(at_one)(jnp.zeros(61))).max()) == 0.0


def test_objective_config_carries_the_drift_in_the_hparams_and_refuses_bad_paths(tmp_path):
    assert "drift" not in hparams(ppo.Config())  # objective=clip: PPO's hparams as before
    assert hparams(ppo.Config(objective="ta_lpo"))["drift"]["w1"].shape == (16, DRIFT_HIDDEN)
    phi = {"w1": np.ones((8, DRIFT_HIDDEN), np.float32), "w2": np.full(DRIFT_HIDDEN, 2.0, np.float32)}
    save_drift(tmp_path / "phi.npz", phi)
    config = ppo.Config(objective=str(tmp_path / "phi.npz"))
    stacked = stacked_hparams([config] * 3)
    assert stacked["drift"]["w1"].shape == (3, 8, DRIFT_HIDDEN) and stacked["lr"].shape == (3,)
    np.testing.assert_array_equal(load_drift(tmp_path / "phi.npz")["w2"], phi["w2"])
    with pytest.raises(ConfigError, match="objective='nope'.*clip, lpo, ta_lpo"):
        ppo.Config(objective="nope")
    np.savez(tmp_path / "bad.npz", w1=np.ones((3, 4)), w2=np.ones(4))
    with pytest.raises(ConfigError, match="w1 \\(3, 4\\)"):
        ppo.Config(objective=str(tmp_path / "bad.npz"))
