"""Twin Delayed DDPG (Fujimoto et al. 2018, "Addressing Function Approximation Error in Actor-Critic Methods"):
a deterministic tanh actor explored with Gaussian noise, twin critics with a min target, target policy
smoothing (clipped noise on the target action) and delayed policy updates (the actor and both target networks
move every `policy_delay` critic steps); continuous, bounded actions.

DDPG (Lillicrap et al. 2016) falls out: `--set num_critics=1 --set policy_delay=1 --set target_noise=0`
(one critic, no smoothing, actor and targets updated at every step).

Reads top to bottom: config, the learner (actor, critics, their targets, optimiser states, gradient steps
taken), `make_program` (init, acting, one gradient step; the collect -> replay -> learn skeleton and observation
normalisation and `policy_state` are jaxrl.algos.off_policy's), `make_policy` (deterministic: the actor's
action, for `jaxrl eval`), and the `ALGORITHM` it declares.

Noise scales are fractions of the action half-range (high - low) / 2, as Fujimoto et al.'s are of max_action.
The Pendulum preset is Rejax's TD3 config (github.com/keraJLi/rejax, configs/gymnax/pendulum.yaml), whose
noises are in action units: Pendulum's half-range is 2, so 0.3, 0.2 and 0.5 become 0.15, 0.1 and 0.25.
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
from jaxrl.distributions import to_bounds
from jaxrl.networks import DeterministicActor, QEnsemble
from jaxrl.normalize import RunningStats
from jaxrl.optim import gradient_step, make_optimizer

ADAM_EPS = 1e-8  # optax's default, as Rejax and Fujimoto et al.'s PyTorch Adam


@dataclass(frozen=True)
class Config(off_policy.OffPolicyConfig):
    # static: shapes and program structure
    env: str = static("gymnax:Pendulum-v1", "environment id (see `jaxrl envs`); continuous, bounded actions")
    num_critics: int = static(2, "critics of the ensemble; the target takes their minimum (1: DDPG)", low=1)
    policy_delay: int = static(2, "critic gradient steps per actor step and target update", low=1)
    # dynamic: traced numbers, may differ per run inside one program
    exploration_noise: float = dynamic(0.1, "std of the Gaussian noise added to the actor's action while "
                                            "collecting (fraction of the half-range)", low=0.0)
    target_noise: float = dynamic(0.2, "std of the smoothing noise on the target action (fraction of the "
                                       "half-range; 0: no smoothing)", low=0.0)
    noise_clip: float = dynamic(0.5, "the smoothing noise is clipped to +-noise_clip", low=0.0)


# Settings known to work, applied under the user's own. Prefixes in order: a later match wins.
PRESETS: dict[str, dict[str, Any]] = {
    # Rejax's TD3 for Pendulum-v1 (configs/gymnax/pendulum.yaml): random actions for the first 1000 env steps,
    # batch 100, lr 1e-3, polyak 0.95 (tau 0.05), gradient clip 100, noises 0.3/0.2/0.5 in action units.
    "gymnax:Pendulum": dict(learning_starts=1_000, random_warmup=True, batch_size=100, lr=1e-3, tau=0.05,
                            max_grad_norm=100.0, exploration_noise=0.15, target_noise=0.1, noise_clip=0.25,
                            policy_delay=2),
    # Rejax's tuned TD3 for brax hopper (configs/brax/hopper.yaml): 128 envs, 128 gradient steps per env-step
    # batch, lr 1.88e-4, gamma 0.995, polyak 0.95 once per batch, policy delay 3, tanh 64-64 networks; brax's
    # actions lie in [-1, 1], so its noises carry over unchanged.
    "brax:hopper": dict(num_envs=128, buffer_size=1_048_576, learning_starts=8_192, random_warmup=True,
                        batch_size=256, lr=1.8789279685460533e-4, gradient_steps=128, total_timesteps=5_242_880,
                        gamma=0.995, tau=0.05, target_update="update", max_grad_norm=2.0, exploration_noise=0.5,
                        target_noise=0.8, noise_clip=0.5, policy_delay=3, activation="tanh", hidden_sizes=(64, 64),
                        normalize_obs=True),
}


@struct.dataclass
class Learner:
    actor: Any
    target_actor: Any
    critic: Any  # leaves [num_critics, ...]
    target_critic: Any
    actor_opt: Any
    critic_opt: Any
    steps: jax.Array  # critic gradient steps taken (for the policy delay)


def make_networks(config: Config, env: envs.Environment, env_params):
    box = off_policy.action_box(config, env, env_params, "td3")
    layers = dict(hidden_sizes=config.hidden_sizes, activation=config.activation, weight_init=config.weight_init)
    return DeterministicActor(box.dim, box.obs_ndim, **layers), QEnsemble(config.num_critics, box.obs_ndim,
                                                                          **layers), box


def make_program(config: Config) -> Program:
    env = make_env(config)
    actor, critic, box = make_networks(config, env, env.default_params)

    def init_learner(key, obs, hp):
        actor_key, critic_key = jax.random.split(key)
        actor_params = actor.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, jnp.zeros(obs.shape[:1] + (box.dim,)))
        opt = make_optimizer(hp["lr"], hp["max_grad_norm"], ADAM_EPS)
        return Learner(actor_params, actor_params, critic_params, critic_params, opt.init(actor_params),
                       opt.init(critic_params), jnp.int32(0))

    def act(learner, key, obs, hp):
        unit = actor.apply(learner.actor, obs)
        noisy = jnp.clip(unit + hp["exploration_noise"] * jax.random.normal(key, unit.shape), -1.0, 1.0)
        return to_bounds(noisy, box.low, box.high)

    def critic_loss(critic_params, batch, targets):
        q = critic.apply(critic_params, batch.obs, batch.action)  # [num_critics, B]
        loss = 0.5 * jnp.square(q - targets).mean(-1).sum()
        return loss, {"critic_loss": loss, "q_mean": q.mean()}

    def actor_loss(actor_params, critic_params, obs):
        # The first critic steers the actor (Fujimoto et al.).
        loss = -critic.apply(critic_params, obs, to_bounds(actor.apply(actor_params, obs), box.low, box.high))[0].mean()
        return loss, {"actor_loss": loss}

    def polyak(learner, hp):
        move = lambda online, target: optax.incremental_update(online, target, hp["tau"])  # noqa: E731
        return learner.replace(target_actor=move(learner.actor, learner.target_actor),
                               target_critic=move(learner.critic, learner.target_critic))

    def update_actor(learner, obs, hp):
        """The delayed step: the actor, then (per gradient step) both targets."""
        opt = make_optimizer(hp["lr"], hp["max_grad_norm"], ADAM_EPS)
        actor_params, actor_opt, stats = gradient_step(opt, actor_loss, learner.actor, learner.actor_opt,
                                                       learner.critic, obs)
        learner = learner.replace(actor=actor_params, actor_opt=actor_opt)
        if config.target_update == "gradient_step":
            learner = polyak(learner, hp)
        return learner, stats["actor_loss"]

    def learn_step(learner: Learner, batch, key, hp):
        opt = make_optimizer(hp["lr"], hp["max_grad_norm"], ADAM_EPS)
        target_unit = actor.apply(learner.target_actor, batch.next_obs)
        smoothing = jnp.clip(hp["target_noise"] * jax.random.normal(key, target_unit.shape), -hp["noise_clip"],
                             hp["noise_clip"])
        next_action = to_bounds(jnp.clip(target_unit + smoothing, -1.0, 1.0), box.low, box.high)
        next_q = critic.apply(learner.target_critic, batch.next_obs, next_action).min(0)
        targets = jax.lax.stop_gradient(batch.reward + batch.discount * next_q)
        critic_params, critic_opt, stats = gradient_step(opt, critic_loss, learner.critic, learner.critic_opt,
                                                         batch, targets)
        learner = learner.replace(critic=critic_params, critic_opt=critic_opt, steps=learner.steps + 1)
        learner, actor_loss_value = jax.lax.cond(
            learner.steps % config.policy_delay == 0, lambda: update_actor(learner, batch.obs, hp),
            lambda: (learner, jnp.float32(0.0)))
        return learner, {"critic_loss": stats["critic_loss"], "q_mean": stats["q_mean"],
                         "actor_loss": actor_loss_value}

    return off_policy.make_program(config, env, init_learner, act, learn_step, polyak)


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action` in the env's bounds: the actor's action, or when
    `stochastic` with the exploration noise drawn with `key`; obs [*obs_shape] or batched."""
    actor, _, box = make_networks(config, env, env_params)

    def act(pstate, obs, key=None):
        unit = actor.apply(pstate["params"], off_policy.network_input(config, RunningStats(**pstate["obs_stats"]),
                                                                      obs))
        if stochastic:
            unit = jnp.clip(unit + config.exploration_noise * jax.random.normal(key, unit.shape), -1.0, 1.0)
        return to_bounds(unit, box.low, box.high)

    return act


ALGORITHM = Algorithm("td3", "Twin Delayed DDPG (and DDPG), continuous actions", Config, make_program,
                      off_policy.policy_state, make_policy, PRESETS)
make_train = ALGORITHM.make_train
