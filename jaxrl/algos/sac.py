"""Soft Actor-Critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications"): a tanh-squashed
Gaussian policy, twin critics with a min target, an automatically tuned entropy temperature and Polyak-averaged
target critics; continuous, bounded actions.

Reads top to bottom: config, the learner (networks, targets, temperature, optimiser states), `make_program`
(init, acting, one gradient step: critics -> actor -> temperature -> targets; the collect -> replay -> learn
skeleton, observation normalisation and `policy_state` are jaxrl.algos.off_policy's), `make_policy`
(deterministic: the squashed mean, for `jaxrl eval`), and the `ALGORITHM` it declares.

The defaults are Rejax's SAC config for Pendulum-v1 (github.com/keraJLi/rejax, configs/gymnax/pendulum.yaml:
1 env, a 10k buffer, learning after 256 env steps, batches of 256, Adam at 0.01 for actor, critics and
temperature, one gradient step per env step, gamma 0.99, polyak 0.98 = tau 0.02, swish (silu) 64-64 networks,
target entropy -|A|, observation normalisation), run for 2e4 env steps instead of 1e4. Rejax moves its target
critics once per env-step batch and clips gradients elementwise (here: `target_update`, and a global norm);
it treats time limits as terminal, jaxrl bootstraps through them. A fixed temperature: alpha_lr=0 keeps
alpha at alpha_init.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import envs
from jaxrl.algos import off_policy
from jaxrl.algos.base import Algorithm, Program, make_env
from jaxrl.config import dynamic, static
from jaxrl.distributions import tanh_gaussian_mode, tanh_gaussian_sample
from jaxrl.networks import QEnsemble, SquashedGaussianActor
from jaxrl.normalize import RunningStats
from jaxrl.optim import gradient_step, make_optimizer

ADAM_EPS = 1e-8  # optax's default, as Rejax and Brax


@dataclass(frozen=True)
class Config(off_policy.OffPolicyConfig):
    # static: shapes and program structure
    env: str = static("gymnax:Pendulum-v1", "environment id (see `jaxrl envs`); continuous, bounded actions")
    num_critics: int = static(2, "critics of the ensemble; the target takes their minimum", low=1)
    # dynamic: traced numbers, may differ per run inside one program
    alpha_init: float = dynamic(1.0, "entropy temperature at the start", low=0.0, low_open=True)
    alpha_lr: float = dynamic(0.01, "Adam learning rate of log(alpha) (0: alpha stays at alpha_init)", low=0.0)
    target_entropy_scale: float = dynamic(1.0, "the temperature steers the policy's entropy towards "
                                               "-target_entropy_scale * |A| (of the squashed action in [-1, 1])")


# Settings known to work, applied under the user's own. Prefixes in order: a later match wins.
PRESETS: dict[str, dict[str, Any]] = {
    # Brax's SAC defaults where they differ from the above (brax/training/agents/sac/train.py `train()` and
    # losses.py: lr 1e-4, temperature lr 3e-4, batch 256, tau 0.005 every gradient step, target entropy
    # -0.5 |A|; networks.py: 256-256 ReLU), with observation normalisation as in Brax's tuned SAC configs and a
    # discount of 0.99 (train()'s default 0.9 is a placeholder the tuned configs replace).
    "brax:": dict(lr=1e-4, alpha_lr=3e-4, batch_size=256, tau=0.005, target_update="gradient_step",
                  target_entropy_scale=0.5, hidden_sizes=(256, 256), activation="relu", gamma=0.99,
                  buffer_size=100_000, learning_starts=1_000, total_timesteps=100_000),
    # Rejax's tuned SAC for brax hopper (configs/brax/hopper.yaml): 128 envs, 128 gradient steps per env-step
    # batch, batch 128, lr 5.72e-4, gamma 0.995, polyak 0.95 once per batch, tanh 64-64 networks; its buffer of
    # 1e6 is 2**20 here (a multiple of the 128 envs).
    "brax:hopper": dict(num_envs=128, buffer_size=2**20, learning_starts=10_000, batch_size=128,
                        lr=5.720796166976961e-4, alpha_lr=5.720796166976961e-4, gradient_steps=128,
                        total_timesteps=5_242_880, gamma=0.995, tau=0.05, target_update="update",
                        target_entropy_scale=1.0, activation="tanh", hidden_sizes=(64, 64), normalize_obs=True),
}


@struct.dataclass
class Learner:
    actor: Any
    critic: Any  # leaves [num_critics, ...]
    target_critic: Any
    log_alpha: jax.Array  # []
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any


def make_networks(config: Config, env: envs.Environment, env_params):
    box = off_policy.action_box(config, env, env_params, "sac")
    layers = dict(hidden_sizes=config.hidden_sizes, activation=config.activation, weight_init=config.weight_init)
    return (SquashedGaussianActor(box.dim, box.obs_ndim, **layers),
            QEnsemble(config.num_critics, box.obs_ndim, **layers), box)


def make_program(config: Config) -> Program:
    env = make_env(config)
    actor, critic, box = make_networks(config, env, env.default_params)

    def optimizers(hp):
        return (make_optimizer(hp["lr"], hp["max_grad_norm"], ADAM_EPS),
                make_optimizer(hp["alpha_lr"], 0.0, ADAM_EPS))

    def init_learner(key, obs, hp):
        actor_key, critic_key = jax.random.split(key)
        actor_params = actor.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, jnp.zeros(obs.shape[:1] + (box.dim,)))
        log_alpha = jnp.log(hp["alpha_init"])
        net_opt, alpha_opt = optimizers(hp)
        return Learner(actor_params, critic_params, critic_params, log_alpha, net_opt.init(actor_params),
                       net_opt.init(critic_params), alpha_opt.init(log_alpha))

    def sample(actor_params, obs, key):
        """A squashed-Gaussian action in the env's bounds [B, A] and its log-probability [B]."""
        return tanh_gaussian_sample(key, *actor.apply(actor_params, obs), box.low, box.high)

    def act(learner, key, obs, hp):
        return sample(learner.actor, obs, key)[0]

    def critic_loss(critic_params, batch, targets):
        q = critic.apply(critic_params, batch.obs, batch.action)  # [num_critics, B]
        loss = 0.5 * jnp.square(q - targets).mean(-1).sum()
        return loss, {"critic_loss": loss, "q_mean": q.mean()}

    def actor_loss(actor_params, critic_params, obs, alpha, key):
        action, log_prob = sample(actor_params, obs, key)
        q = critic.apply(critic_params, obs, action).min(0)
        loss = (alpha * log_prob - q).mean()
        return loss, {"actor_loss": loss, "entropy": -log_prob.mean()}

    def alpha_loss(log_alpha, entropy, target_entropy):
        # Rejax's and Brax's form: the gradient pushes alpha up when the entropy is below its target.
        loss = jnp.exp(log_alpha) * (entropy - target_entropy)
        return loss, {}

    def polyak(learner, hp):
        return learner.replace(target_critic=optax.incremental_update(learner.critic, learner.target_critic,
                                                                      hp["tau"]))

    def learn_step(learner: Learner, batch, key, hp):
        next_key, actor_key = jax.random.split(key)
        net_opt, alpha_opt = optimizers(hp)
        alpha = jnp.exp(learner.log_alpha)
        next_action, next_log_prob = sample(learner.actor, batch.next_obs, next_key)
        next_q = critic.apply(learner.target_critic, batch.next_obs, next_action).min(0)
        targets = jax.lax.stop_gradient(batch.reward + batch.discount * (next_q - alpha * next_log_prob))
        critic_params, critic_opt, critic_stats = gradient_step(net_opt, critic_loss, learner.critic,
                                                                learner.critic_opt, batch, targets)
        actor_params, actor_opt, actor_stats = gradient_step(net_opt, actor_loss, learner.actor, learner.actor_opt,
                                                             critic_params, batch.obs, alpha, actor_key)
        target_entropy = -hp["target_entropy_scale"] * box.dim
        log_alpha, alpha_opt_state, _ = gradient_step(alpha_opt, alpha_loss, learner.log_alpha, learner.alpha_opt,
                                                      actor_stats["entropy"], target_entropy)
        learner = Learner(actor_params, critic_params, learner.target_critic, log_alpha, actor_opt, critic_opt,
                          alpha_opt_state)
        if config.target_update == "gradient_step":
            learner = polyak(learner, hp)
        stats = {"critic_loss": critic_stats["critic_loss"], "q_mean": critic_stats["q_mean"],
                 "actor_loss": actor_stats["actor_loss"], "entropy": actor_stats["entropy"], "alpha": alpha}
        return learner, stats

    return off_policy.make_program(config, env, init_learner, act, learn_step, polyak)


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action` in the env's bounds: tanh of the Gaussian's mean, or when
    `stochastic` a squashed sample drawn with `key`; obs [*obs_shape] or batched."""
    actor, _, box = make_networks(config, env, env_params)

    def act(pstate, obs, key=None):
        obs = off_policy.network_input(config, RunningStats(**pstate["obs_stats"]), obs)
        mean, log_std = actor.apply(pstate["params"], obs)
        if stochastic:
            return tanh_gaussian_sample(key, mean, log_std, box.low, box.high)[0]
        return tanh_gaussian_mode(mean, box.low, box.high)

    return act


ALGORITHM = Algorithm("sac", "Soft Actor-Critic (twin critics, automatic temperature), continuous actions", Config,
                      make_program, off_policy.policy_state, make_policy, PRESETS)
make_train = ALGORITHM.make_train
