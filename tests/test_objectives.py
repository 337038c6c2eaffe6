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
    rng = np.random.default_rng(0)
    old = rng.normal(size=512).astype(np.float32)
    new = old + 0.4 * rng.normal(size=512).astype(np.float32)
    adv = 2.0 * rng.normal(size=512).astype(np.float32)

    def drift_loss(log_prob):
        ratio = jnp.exp(log_prob - old)
        return -jnp.mean(ratio * adv - ppo_drift(ratio, adv, 0.2))

    clipped = lambda log_prob: ppo_policy_loss(log_prob, old, adv, 0.2)[0]
    both = jax.jit(lambda x: (drift_loss(x), clipped(x), jax.grad(drift_loss)(x), jax.grad(clipped)(x)))
    drift_value, clipped_value, drift_grad, clipped_grad = both(new)  # one compilation, not one per operation
    np.testing.assert_allclose(drift_value, clipped_value, atol=1e-6)
    np.testing.assert_allclose(drift_grad, clipped_grad, atol=1e-6)
    assert float(jnp.abs(clipped_grad).max()) > 0 and float((clipped_grad == 0).mean()) > 0.1  # both regimes


@pytest.mark.parametrize("objective", ["lpo", "ta_lpo"])
def test_a_random_learned_drift_is_non_negative_and_flat_at_ratio_one(objective):
    rng = np.random.default_rng(1)
    phi = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in drift_params(objective).items()}
    r, adv = np.meshgrid(np.linspace(0.5, 1.5, 101, dtype=np.float32), np.linspace(-3.0, 3.0, 61, dtype=np.float32))
    at_one = lambda log_r: learned_drift(phi, log_r, adv[:, 0], 0.2, progress=0.7).sum()
    drift, drift_at_one, grad_at_one = jax.jit(lambda: (
        learned_drift(phi, jnp.log(r), adv, 0.2, progress=0.3), learned_drift(phi, jnp.zeros(61), adv[:, 0], 0.2, 0.7),
        jax.grad(at_one)(jnp.zeros(61))))()
    assert float(drift.min()) >= 0.0
    assert float(jnp.abs(drift).max()) > 0.1  # not trivially zero: the random MLP does move it
    assert float(jnp.abs(drift_at_one).max()) == 0.0
    assert float(jnp.abs(grad_at_one).max()) == 0.0


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
