"""Advantage estimation and policy/value losses shared by the algorithms."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards, values, next_values, terminated, done, gamma, gae_lambda):
    """Generalised advantage estimation over a rollout, time-major [T, ...].

    next_values[t] = V(true next observation of step t) -- the final observation
    when the episode ended there -- so a time-limit end (done, not terminated)
    bootstraps, and a terminal one does not. `done` = terminated | truncated
    cuts the recursion at episode boundaries.
    Returns (advantages, value targets), both [T, ...].
    """
    not_terminal = 1.0 - terminated.astype(jnp.float32)
    deltas = rewards + gamma * next_values * not_terminal - values
    decay = gamma * gae_lambda * (1.0 - done.astype(jnp.float32))

    def backward(carry, x):
        delta, d = x
        carry = delta + d * carry
        return carry, carry

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, decay), reverse=True)
    return advantages, advantages + values


def ppo_policy_loss(log_prob, old_log_prob, advantages, clip_eps):
    """Clipped surrogate objective (to minimise); also returns clip fraction and approx KL."""
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.minimum(unclipped, clipped).mean()
    clip_frac = (jnp.abs(ratio - 1.0) > clip_eps).mean()
    approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return loss, clip_frac, approx_kl


def value_loss(values, old_values, targets, clip_eps, clip: bool):
    """0.5 * squared error, optionally with PPO's value clipping around the old prediction."""
    loss = jnp.square(values - targets)
    if clip:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        loss = jnp.maximum(loss, jnp.square(clipped - targets))
    return 0.5 * loss.mean()
