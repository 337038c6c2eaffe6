"""Action distributions as small pure functions (no distribution objects in the hot loop)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxrl.config import dynamic

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


def tanh_log_det(pre_tanh):
    """log(1 - tanh(u)^2) elementwise, the log-derivative of tanh at u, computed without tanh: equal to
    2*(log 2 - u - softplus(-2u)), finite for any u (1 - tanh(u)^2 is 0 in float32 beyond |u| ~ 9)."""
    return 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))


def to_bounds(unit_action, low, high):
    """[..., A] in [-1, 1] -> the same point of the box [low, high] (affine)."""
    return low + (unit_action + 1.0) * (0.5 * (high - low))


def tanh_gaussian_sample(key, mean, log_std, low=-1.0, high=1.0):
    """A tanh-squashed Gaussian sample in the box [low, high] and its log-probability: mean, log_std
    [..., A] -> (action [..., A], log_prob [...]).

    The log-probability is that of the squashed action in [-1, 1]^A, the Gaussian's minus the log-det of
    tanh (change of variables); the affine map to [low, high] would only add the constant
    -sum log((high - low) / 2), left out as SB3, Rejax and Brax do, so a target entropy of -|A| means the same
    for any bounds."""
    pre_tanh = gaussian_sample(key, mean, log_std)
    log_prob = gaussian_log_prob(mean, log_std, pre_tanh) - jnp.sum(tanh_log_det(pre_tanh), axis=-1)
    return to_bounds(jnp.tanh(pre_tanh), low, high), log_prob


def tanh_gaussian_mode(mean, low=-1.0, high=1.0):
    """The deterministic action of a tanh-squashed Gaussian: tanh(mean), in the box [low, high]."""
    return to_bounds(jnp.tanh(mean), low, high)


@dataclass(frozen=True)
class EpsilonGreedyHyperparameters:
    """The exploration schedule of the Q-learning configs (dynamic fields, `hp` below)."""

    eps_start: float = dynamic(1.0, "exploration epsilon at the start of the run", low=0.0, high=1.0)
    eps_end: float = dynamic(0.05, "exploration epsilon after the decay", low=0.0, high=1.0)
    eps_decay: float = dynamic(0.5, "fraction of the run over which epsilon goes linearly from eps_start to eps_end "
                                    "(0: eps_end from the start)", low=0.0, high=1.0)


def epsilon(hp: dict, progress) -> jax.Array:
    """Exploration epsilon after `progress` (fraction of the run done): linear from eps_start to eps_end
    over the first eps_decay of the run, then constant."""
    done = jnp.where(hp["eps_decay"] > 0, jnp.clip(progress / jnp.maximum(hp["eps_decay"], 1e-9), 0.0, 1.0), 1.0)
    return hp["eps_start"] + done * (hp["eps_end"] - hp["eps_start"])


def epsilon_greedy(key: jax.Array, q: jax.Array, eps) -> jax.Array:
    """q [..., action_dim] -> actions [...]: uniformly random with probability eps, else greedy."""
    explore_key, action_key = jax.random.split(key)
    greedy = jnp.argmax(q, -1)
    random_action = jax.random.randint(action_key, greedy.shape, 0, q.shape[-1])
    return jnp.where(jax.random.uniform(explore_key, greedy.shape) < eps, random_action, greedy)
