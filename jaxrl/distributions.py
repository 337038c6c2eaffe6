"""Action distributions as small pure functions (no distribution objects in the hot loop)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

LOG_2PI = jnp.log(2 * jnp.pi)


def categorical_sample(key, logits):
    return jax.random.categorical(key, logits)


def categorical_log_prob(logits, action):
    logp = jax.nn.log_softmax(logits)
    return jnp.take_along_axis(logp, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits):
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def gaussian_sample(key, mean, log_std):
    return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)


def gaussian_log_prob(mean, log_std, action):
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)


def gaussian_entropy(log_std):
    return jnp.sum(log_std + 0.5 * (1.0 + LOG_2PI), axis=-1)


def sample_log_prob(key, dist, discrete: bool):
    """Sample an action and its log-probability from policy output `dist`."""
    if discrete:
        action = categorical_sample(key, dist)
        return action, categorical_log_prob(dist, action)
    mean, log_std = dist
    action = gaussian_sample(key, mean, log_std)
    return action, gaussian_log_prob(mean, log_std, action)


def log_prob(dist, action, discrete: bool):
    return categorical_log_prob(dist, action) if discrete else gaussian_log_prob(*dist, action)


def entropy(dist, discrete: bool):
    return categorical_entropy(dist) if discrete else gaussian_entropy(dist[1])


def mode(dist, discrete: bool):
    """The deterministic action: argmax or the Gaussian mean."""
    return jnp.argmax(dist, axis=-1) if discrete else dist[0]
