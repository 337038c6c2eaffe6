"""Advantage estimation and policy/value losses shared by the algorithms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxrl.config import ConfigError, dynamic, static


@dataclass(frozen=True)
class PPOHyperparameters:
    """The dynamic fields GAE, the PPO loss and its optimiser read (`hp` below), shared by every PPO config."""

    lr: float = dynamic(2.5e-4, "Adam learning rate", low=0.0, low_open=True)
    gamma: float = dynamic(0.99, "discount", low=0.0, high=1.0)
    gae_lambda: float = dynamic(0.95, "GAE lambda", low=0.0, high=1.0)
    clip_eps: float = dynamic(0.2, "PPO ratio clipping epsilon", low=0.0, low_open=True)
    ent_coef: float = dynamic(0.01, "entropy bonus coefficient", low=0.0)
    vf_coef: float = dynamic(0.5, "value loss coefficient", low=0.0)
    max_grad_norm: float = dynamic(0.5, "global gradient-norm clip (0: no clipping)", low=0.0)


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


def mean(x, weights=None):
    """Mean of `x`, or its weighted mean (samples with weight 0 do not count; 0 if none counts)."""
    if weights is None:
        return x.mean()
    return (x * weights).sum() / jnp.maximum(weights.sum(), 1e-8)


def normalize(x, weights=None):
    """Standardise `x` (advantages) over the samples that count."""
    mu = mean(x, weights)
    return (x - mu) / (jnp.sqrt(mean(jnp.square(x - mu), weights)) + 1e-8)


def ppo_policy_loss(log_prob, old_log_prob, advantages, clip_eps, weights=None):
    """Clipped surrogate objective (to minimise); also returns clip fraction and approx KL.
    `weights` (0/1) drops samples whose action did not count (e.g. a board-game seat not to move)."""
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -mean(jnp.minimum(unclipped, clipped), weights)
    clip_frac = mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32), weights)
    approx_kl = mean((ratio - 1.0) - log_ratio, weights)
    return loss, clip_frac, approx_kl


def value_loss(values, old_values, targets, clip_eps, clip: bool, weights=None):
    """0.5 * squared error, optionally with PPO's value clipping around the old prediction."""
    loss = jnp.square(values - targets)
    if clip:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        loss = jnp.maximum(loss, jnp.square(clipped - targets))
    return 0.5 * mean(loss, weights)


def ppo_loss(log_prob, entropy, value_out, old_log_prob, old_values, advantages, targets, hp: dict,
             value_head: ValueHead, clip_value: bool, normalize_advantages: bool, weights=None, value_weights=None):
    """PPO's objective on a minibatch (to minimise): clipped surrogate + vf_coef * value loss - ent_coef * entropy.

    One entry per sample, all of one shape [...]: log_prob and entropy of the current network; old_log_prob and
    old_values (decoded) from the rollout; advantages and value targets. value_out [..., value_head.outputs]: the
    current critic's outputs. The value loss is 0.5 * squared error for a scalar head (clipped around the old
    value if `clip_value`), the cross-entropy to the projected targets for a categorical one (not clipped: PPO's
    value clipping bounds a regression's step, and a categorical head's logits move by softmax - target, already
    bounded). hp: clip_eps, vf_coef, ent_coef. `weights` (0/1) drop samples from the policy loss, entropy and
    advantage statistics (an action that did not count); `value_weights` from the value loss (a sample not the
    learner's). Returns (total, stats).
    """
    if normalize_advantages:
        advantages = normalize(advantages, weights)
    pi_loss, clip_frac, approx_kl = ppo_policy_loss(log_prob, old_log_prob, advantages, hp["clip_eps"], weights)
    if value_head.kind == "scalar":
        v_loss = value_loss(value_head.value(value_out), old_values, targets, hp["clip_eps"], clip_value,
                            value_weights)
    else:
        v_loss = mean(value_head.cross_entropy(value_out, targets), value_weights)
    entropy = mean(entropy, weights)
    total = pi_loss + hp["vf_coef"] * v_loss - hp["ent_coef"] * entropy
    return total, {"policy_loss": pi_loss, "value_loss": v_loss, "entropy": entropy,
                   "approx_kl": approx_kl, "clip_frac": clip_frac}


VALUE_HEADS = ("scalar", "hl_gauss", "two_hot")
ERF_ARGUMENT_BOUND = 5.0  # erf(5) == 1 in float32; unclipped arguments hung vmapped CPU programs (jax 0.10)


@dataclass(frozen=True)
class ValueHeadConfig:
    """The static fields choosing how a network outputs values (a critic, or Q-values per action)."""

    value_head: str = static("scalar", "value output: one number (scalar), or logits over bins trained by "
                                       "cross-entropy to a HL-Gauss or two-hot projected target", choices=VALUE_HEADS)
    value_bins: int = static(51, "bins of a categorical value head", low=2)
    value_min: float = static(-100.0, "lowest value a categorical head represents (its first bin centre)")
    value_max: float = static(100.0, "highest value a categorical head represents (its last bin centre)")
    value_sigma: float = static(0.75, "HL-Gauss standard deviation, in bin widths", low=0.0, low_open=True)

    @property
    def value_head_spec(self) -> "ValueHead":
        if self.value_head != "scalar" and not self.value_min < self.value_max:
            raise ConfigError(f"value_min={self.value_min} must be below value_max={self.value_max}")
        return ValueHead(self.value_head, self.value_bins, self.value_min, self.value_max, self.value_sigma)


@dataclass(frozen=True)
class ValueHead:
    """Values as one output, or as a distribution over `bins` evenly spaced centres on [low, high]
    ("Stop Regressing", Farebrother et al. 2024). `out` arrays end in `outputs` numbers per value."""

    kind: str = "scalar"
    bins: int = 51
    low: float = -100.0
    high: float = 100.0
    sigma: float = 0.75  # HL-Gauss: in bin widths

    @property
    def outputs(self) -> int:
        return 1 if self.kind == "scalar" else self.bins

    @property
    def bin_width(self) -> float:
        return (self.high - self.low) / (self.bins - 1)

    def centers(self) -> jax.Array:
        return jnp.linspace(self.low, self.high, self.bins)

    def value(self, out: jax.Array) -> jax.Array:
        """[..., outputs] -> [...]: the output, or the expectation of the categorical distribution."""
        if self.kind == "scalar":
            return out[..., 0]
        return jax.nn.softmax(out) @ self.centers()

    def project(self, target: jax.Array) -> jax.Array:
        """[...] -> [..., bins]: the target distribution of each scalar target, clipped into the support.

        hl_gauss: a Gaussian of std sigma * bin_width around the target, integrated over each bin
        (bins extend half a width either side of their centre) and renormalised to the support;
        two_hot: the target split between its two neighbouring centres so the expectation is the target.
        """
        target = jnp.clip(target, self.low, self.high)[..., None]
        if self.kind == "two_hot":
            below = jnp.clip(jnp.floor((target - self.low) / self.bin_width), 0, self.bins - 2)
            upper_weight = jnp.clip((target - self.low) / self.bin_width - below, 0.0, 1.0)
            index = jnp.arange(self.bins)
            return jnp.where(index == below, 1.0 - upper_weight, 0.0) + jnp.where(index == below + 1, upper_weight, 0.0)
        edges = jnp.linspace(self.low - self.bin_width / 2, self.high + self.bin_width / 2, self.bins + 1)
        scale = self.sigma * self.bin_width * math.sqrt(2.0)
        cdf = jax.scipy.special.erf(jnp.clip((edges - target) / scale, -ERF_ARGUMENT_BOUND, ERF_ARGUMENT_BOUND))
        mass = jnp.maximum(cdf[..., 1:] - cdf[..., :-1], 0.0)  # float32 erf is not monotone in its last bit
        return mass / mass.sum(-1, keepdims=True)  # > 0: the target's own bin holds mass

    def cross_entropy(self, out: jax.Array, target: jax.Array) -> jax.Array:
        """[..., bins], [...] -> [...]: cross-entropy of the predicted bins against the projected target
        (no gradient through the target)."""
        probs = jax.lax.stop_gradient(self.project(target))
        return -(probs * jax.nn.log_softmax(out)).sum(-1)


def lambda_returns(rewards, next_values, terminated, done, gamma, td_lambda):
    """λ-returns over a rollout, time-major [T, ...]:

        G[t] = r[t] + gamma * (1 - terminated[t]) * (v[t] + lambda[t] * (G[t+1] - v[t])),
        lambda[t] = td_lambda * (1 - done[t]),  v = next_values,  G[T] = v[T-1].

    next_values[t] values the true next observation of step t (the final observation when the episode
    ended there): max_a Q(next obs) gives Peng's Q(λ) targets (PQN), V(next obs) TD(λ) targets. So a
    time-limit end (done, not terminated) bootstraps from the final observation, a terminal one does not,
    and `done` = terminated | truncated cuts the recursion at episode boundaries. Returns G [T, ...].
    """
    not_terminal = 1.0 - terminated.astype(jnp.float32)
    decay = td_lambda * (1.0 - done.astype(jnp.float32))

    def backward(next_return, x):
        reward, value, not_term, lam = x
        ret = reward + gamma * not_term * (value + lam * (next_return - value))
        return ret, ret

    _, returns = jax.lax.scan(backward, next_values[-1], (rewards, next_values, not_terminal, decay), reverse=True)
    return returns
