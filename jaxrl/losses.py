"""Advantage estimation, policy/value losses and learned policy objectives (drifts) shared by the algorithms."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.config import ConfigError, SharedFields, dynamic, static
from jaxrl.networks import ACTIVATIONS


@dataclass(frozen=True)
class PPOStructure:
    """The static fields shared by every PPO config (after the algorithm's own): the learning schedule and the
    actor-critic network."""

    update_epochs: int = static(4, "passes over each rollout", low=1)
    hidden_sizes: tuple[int, ...] = static((64, 64), "hidden layer widths of actor and critic", low=1)
    activation: str = static("tanh", "hidden activation", choices=tuple(ACTIVATIONS))
    anneal_lr: bool = static(True, "decay the learning rate linearly to 0 over the run")
    clip_value: bool = static(True, "clip the value loss around the old prediction (uses clip_eps; scalar "
                                    "value_head only)")
    normalize_advantages: bool = static(True, "standardise advantages per minibatch")


@dataclass(frozen=True)
class PPOHyperparameters(SharedFields):
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
    return (loss, *ratio_stats(ratio, log_ratio, clip_eps, weights))


def ratio_stats(ratio, log_ratio, clip_eps, weights=None):
    """Fraction of samples outside the clipping range, and the approximate KL of the new policy from the old."""
    clip_frac = mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32), weights)
    return clip_frac, mean((ratio - 1.0) - log_ratio, weights)


# Learned objectives (Lu et al. 2022, "Discovered Policy Optimisation"; Jackson et al. 2024, TA-LPO): a policy
# loss -mean[r * A - D(r, A)] whose drift D >= 0 is zero with zero gradient at r = 1. PPO's clipped surrogate is
# the drift relu((r - clip(r, 1 +- eps)) * A); a learned drift adds a small MLP f_phi to it, inside a relu
# lowered by DRIFT_MARGIN, so that near r = 1 (where f_phi and PPO's drift are 0) the relu is flat.
OBJECTIVES = ("clip", "lpo", "ta_lpo")
DRIFT_HIDDEN = 128
DRIFT_MARGIN = 1e-4
DRIFT_FEATURES = 8  # r-1, (r-1)^2, log r, (log r)^2 and those four times A; TA-LPO: also all eight times n/N


def ppo_drift(ratio, advantages, clip_eps):
    """PPO's drift: r*A - ppo_drift == min(r*A, clip(r, 1 +- eps)*A)."""
    return jax.nn.relu((ratio - jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)) * advantages)


def drift_inputs(log_ratio, advantages, progress=None):
    """[..., 8] features of (r, A), or [..., 16] with `progress` (the fraction n/N of the training budget used)."""
    r1 = jnp.exp(log_ratio) - 1.0
    base = jnp.stack([r1, r1 * r1, log_ratio, log_ratio * log_ratio], axis=-1)
    x = jnp.concatenate([base, base * advantages[..., None]], axis=-1)
    return x if progress is None else jnp.concatenate([x, x * progress], axis=-1)


def drift_params(objective: str) -> dict:
    """The learned drift's parameters at PPO (f_phi = 0): {"w1": [inputs, 128], "w2": [128]}, no biases."""
    inputs = DRIFT_FEATURES * (2 if objective == "ta_lpo" else 1)
    return {"w1": np.zeros((inputs, DRIFT_HIDDEN), np.float32), "w2": np.zeros(DRIFT_HIDDEN, np.float32)}


def drift_objective(phi) -> str:
    """Which learned objective `phi` parameterises, read from its input width."""
    return "ta_lpo" if phi["w1"].shape[0] == 2 * DRIFT_FEATURES else "lpo"


def load_drift(path: str) -> dict:
    """A learned drift saved by `save_drift` (`objective=PATH`), checked."""
    if not Path(path).is_file():
        raise ConfigError(f"objective={path!r}: must be one of {', '.join(OBJECTIVES)} or an existing .npz file "
                          f"of a learned drift (as `jaxrl meta` saves)")
    try:
        with np.load(path) as data:
            phi = {"w1": np.asarray(data["w1"], np.float32), "w2": np.asarray(data["w2"], np.float32)}
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"objective={path!r} is not a learned drift .npz with arrays w1, w2 ({err})") from None
    if phi["w1"].shape not in ((DRIFT_FEATURES, DRIFT_HIDDEN), (2 * DRIFT_FEATURES, DRIFT_HIDDEN)) \
            or phi["w2"].shape != (DRIFT_HIDDEN,) or not all(np.isfinite(w).all() for w in phi.values()):
        raise ConfigError(f"objective={path!r}: w1 {phi['w1'].shape} and w2 {phi['w2'].shape} must be finite, of "
                          f"shapes ({DRIFT_FEATURES} or {2 * DRIFT_FEATURES}, {DRIFT_HIDDEN}) and ({DRIFT_HIDDEN},)")
    return phi


def save_drift(path, phi) -> None:
    """A learned drift as an .npz that `objective=PATH` (`load_drift`) reads."""
    from jaxrl.records import save_arrays

    save_arrays(Path(path), {k: np.asarray(v, np.float32) for k, v in phi.items()})


def learned_drift(phi, log_ratio, advantages, clip_eps, progress=None):
    """relu(f_phi(x) - DRIFT_MARGIN + PPO's drift): >= 0, and 0 with zero gradient at r = 1 (x = 0 there, and an
    MLP without biases maps 0 to 0). `progress` is read when phi is a TA-LPO drift."""
    x = drift_inputs(log_ratio, advantages, progress if drift_objective(phi) == "ta_lpo" else None)
    f = jnp.tanh(x @ phi["w1"]) @ phi["w2"]
    return jax.nn.relu(f - DRIFT_MARGIN + ppo_drift(jnp.exp(log_ratio), advantages, clip_eps))


def drift_policy_loss(log_prob, old_log_prob, advantages, clip_eps, phi, progress, weights=None):
    """-mean[r*A - D_phi(r, A)] (to minimise), with clip fraction and approx KL as `ppo_policy_loss`."""
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    loss = -mean(ratio * advantages - learned_drift(phi, log_ratio, advantages, clip_eps, progress), weights)
    return (loss, *ratio_stats(ratio, log_ratio, clip_eps, weights))


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
    bounded). hp: clip_eps, vf_coef, ent_coef (and, for a learned objective, its drift parameters "drift" and
    "progress", the fraction of the run done). `weights` (0/1) drop samples from the policy loss, entropy and
    advantage statistics (an action that did not count); `value_weights` from the value loss (a sample not the
    learner's). Returns (total, stats).
    """
    if normalize_advantages:
        advantages = normalize(advantages, weights)
    if "drift" in hp:  # a learned objective: its parameters and the fraction of the run done travel in hp
        pi_loss, clip_frac, approx_kl = drift_policy_loss(log_prob, old_log_prob, advantages, hp["clip_eps"],
                                                          hp["drift"], hp["progress"], weights)
    else:
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
