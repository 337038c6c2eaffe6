"""Deep Q-Networks (Mnih et al. 2015) with a target network, double Q-learning (van Hasselt et al. 2016),
a dueling head (Wang et al. 2016), n-step returns and prioritised replay (Schaul et al. 2016); discrete actions.

Reads top to bottom: config, runner state, `make_program` (init + one update: collect_rollout with an
epsilon-greedy policy -> replay.add -> `gradient_steps` gradient steps on replayed batches once
`learning_starts` env steps are in -> target network update), `policy_state` and `make_policy` (greedy,
for `jaxrl eval`), and the `ALGORITHM` it declares.

The defaults are PureJaxRL's DQN config for CartPole-v1 (purejaxrl/dqn.py, `main()`): 10 envs, one
vectorised env step and one gradient step of 128 transitions per update (its TRAINING_INTERVAL of 10 env
steps), a buffer of 10,000 transitions, 5e5 env steps, epsilon 1.0 -> 0.05 over the first 2.5e5, the target
network copied (tau 1) every 500 env steps, Adam at 2.5e-4 (epsilon 1e-8) without gradient clipping, learning
after 1e4 env steps, gamma 0.99, a 120-84 ReLU Q-network with flax's default initialisation and a squared-error
loss. Seeds differ (run i uses seed + i; PureJaxRL's dqn.py replaces every seed's key by PRNGKey(0)).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import envs, replay
from jaxrl.algos import q_learning
from jaxrl.algos.base import Algorithm, EnvFamilyConfig, Program, make_env
from jaxrl.algos.off_policy import ReplaySchedule
from jaxrl.config import ConfigError, SeedFields, check_run_fields, dynamic, run, static, validate_fields
from jaxrl.devices import vec_env_axes
from jaxrl.distributions import EpsilonGreedyHyperparameters, epsilon
from jaxrl.losses import ValueHead, ValueHeadConfig
from jaxrl.networks import ACTIVATIONS, INITS, ConvTorso, QNetwork
from jaxrl.optim import gradient_step, make_optimizer
from jaxrl.rollout import collect_rollout, episode_metrics


@dataclass(frozen=True)
class Config(ReplaySchedule, ValueHeadConfig, EpsilonGreedyHyperparameters, ConvTorso, EnvFamilyConfig, SeedFields):
    # static: shapes and program structure (num_steps, gradient_steps, buffer_size: ReplaySchedule's defaults)
    env: str = static("gymnax:CartPole-v1", "environment id (see `jaxrl envs`); discrete actions")
    num_envs: int = 10
    batch_size: int = 128
    learning_starts: int = 10_000
    target_update_interval: int = static(500, "env steps per seed (all envs) between target network updates; a "
                                              "multiple of num_envs*num_steps", low=1)
    double_q: bool = static(False, "double Q-learning: the online network picks the bootstrap action, the target "
                                   "network values it")
    dueling: bool = static(False, "dueling head: a state value plus mean-centred action advantages")
    n_step: int = static(1, "steps of the return before bootstrapping (cut at episode ends)", low=1)
    loss: str = static("mse", "TD loss of a scalar value head: squared error or Huber (delta 1)",
                       choices=("mse", "huber"))
    prioritized: bool = static(False, "proportional prioritised replay with importance weights")
    hidden_sizes: tuple[int, ...] = static((120, 84), "hidden layer widths of the Q-network", low=1)
    activation: str = static("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    weight_init: str = static("lecun", "weight initialisation: lecun (flax's default, as PureJaxRL's DQN) or "
                                       "orthogonal (as PPO)", choices=INITS)
    # dynamic: traced numbers, may differ per run inside one program
    lr: float = dynamic(2.5e-4, "Adam learning rate", low=0.0, low_open=True)
    gamma: float = dynamic(0.99, "discount", low=0.0, high=1.0)
    tau: float = dynamic(1.0, "at each target update the target moves this fraction of the way to the online "
                              "network (1: a copy; < 1: Polyak averaging)", low=0.0, low_open=True, high=1.0)
    max_grad_norm: float = dynamic(0.0, "global gradient-norm clip (0: no clipping)", low=0.0)
    adam_eps: float = dynamic(1e-8, "Adam's epsilon (optax's default, as PureJaxRL's DQN)", low=0.0, low_open=True)
    per_alpha: float = dynamic(0.6, "prioritised replay: priority exponent (0: uniform)", low=0.0)
    per_beta: float = dynamic(0.4, "prioritised replay: importance-weight exponent at the start, annealed "
                                   "linearly to 1 by the end of the run", low=0.0, high=1.0)
    per_eps: float = dynamic(1e-6, "prioritised replay: added to |TD error| to make a priority", low=0.0,
                             low_open=True)
    # run: host-side only
    total_timesteps: int = run(500_000, "env steps per seed", low=1)

    def __post_init__(self):
        validate_fields(self)
        self.check_replay()
        if self.target_update_interval % self.steps_per_update:
            raise ConfigError(f"target_update_interval={self.target_update_interval} env steps is not a multiple of "
                              f"one update's num_envs*num_steps={self.steps_per_update}")
        self.value_head_spec  # checks the categorical support
        check_run_fields(self)


@struct.dataclass
class RunnerState:
    params: Any
    target_params: Any
    opt_state: Any
    buffer: replay.ReplayBuffer  # storage [buffer_size / num_envs, num_envs, ...]
    env_state: Any
    obs: jax.Array  # [num_envs, *obs_shape]
    key: jax.Array
    update_idx: jax.Array  # updates done so far
    hparams: dict  # dynamic config fields as traced scalars


def make_network(config: Config, env: envs.Environment, env_params) -> tuple[QNetwork, ValueHead]:
    num_actions, obs_ndim, image_shape = q_learning.network_shape("dqn", config, env, env_params)
    head = config.value_head_spec
    network = QNetwork(num_actions, obs_ndim, config.hidden_sizes, config.activation, dueling=config.dueling,
                       outputs=head.outputs, conv_channels=config.conv_channels, conv_kernel=config.conv_kernel,
                       image_shape=image_shape, weight_init=config.weight_init)
    return network, head


def make_program(config: Config) -> Program:
    base_env = make_env(config)
    env_params = base_env.default_params
    network, head = make_network(config, base_env, env_params)
    env = envs.make_vec_env(base_env, config.num_envs)
    # Counted in updates: learning starts once more than `learning_starts` env steps are in (as PureJaxRL's).
    learning_starts = config.learning_starts // config.steps_per_update
    target_every = config.target_update_interval // config.steps_per_update
    q_values = q_learning.q_values_of(network, head)

    def init(key, hp):
        key, obs, env_state, params, opt_state = q_learning.start(network, env, env_params, key, hp["max_grad_norm"])
        flags = jnp.zeros(config.num_envs, bool)
        example = replay.Step(obs, jnp.zeros(config.num_envs, jnp.int32), jnp.zeros(config.num_envs, jnp.float32),
                              flags, flags, obs)
        buffer = replay.create(example, config.buffer_size, config.prioritized)
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
        return RunnerState(params, params, opt_state, buffer, env_state, obs, key, jnp.int32(0), hp)

    def bootstrap_targets(params, target_params, batch: replay.Batch):
        """[B]: n-step return + discount * Q_target(next_obs, a*), a* the target's (or with double_q the
        online network's) greedy action."""
        next_q = q_values(target_params, batch.next_obs)
        chooser = q_values(params, batch.next_obs) if config.double_q else next_q
        best = jnp.take_along_axis(next_q, jnp.argmax(chooser, -1)[:, None], -1)[:, 0]
        return batch.reward + batch.discount * best

    def loss_fn(params, batch: replay.Batch, targets):
        out = network.apply(params, batch.obs)  # [B, action_dim, outputs]
        chosen = jnp.take_along_axis(out, batch.action[:, None, None], 1)[:, 0]  # [B, outputs]
        q = head.value(chosen)
        if head.kind != "scalar":
            per_sample = head.cross_entropy(chosen, targets)
        elif config.loss == "huber":
            per_sample = optax.huber_loss(q, targets)
        else:
            per_sample = jnp.square(q - targets)
        loss = (per_sample * batch.weight).mean()
        return loss, {"loss": loss, "q_mean": q.mean(), "td_abs": jnp.abs(targets - q)}

    def gradient_update(buffer, target_params, hp, beta, carry, key):
        """One gradient step on a replayed batch; the priorities (not the storage) are carried."""
        params, opt_state, priorities, max_priority = carry
        buffer = buffer.replace(priorities=priorities, max_priority=max_priority)
        batch = replay.sample(buffer, key, config.batch_size, hp["gamma"], config.n_step, hp["per_alpha"], beta)
        targets = jax.lax.stop_gradient(bootstrap_targets(params, target_params, batch))
        optimizer = make_optimizer(hp["lr"], hp["max_grad_norm"], hp["adam_eps"])
        params, opt_state, stats = gradient_step(optimizer, loss_fn, params, opt_state, batch, targets)
        td_abs = stats.pop("td_abs")
        if config.prioritized:
            buffer = replay.update_priorities(buffer, batch.row, batch.env, td_abs + hp["per_eps"])
        return (params, opt_state, buffer.priorities, buffer.max_priority), stats

    def learn(state: RunnerState, buffer, key):
        """`gradient_steps` gradient steps: (params, opt_state, priorities, max_priority, mean stats)."""
        hp = state.hparams
        beta = hp["per_beta"] + (1.0 - hp["per_beta"]) * state.update_idx / config.num_updates
        step = partial(gradient_update, buffer, state.target_params, hp, beta)
        carry = (state.params, state.opt_state, buffer.priorities, buffer.max_priority)
        carry, stats = jax.lax.scan(step, carry, jax.random.split(key, config.gradient_steps))
        return *carry, {k: v.mean() for k, v in stats.items()}

    def update(state: RunnerState):
        hp = state.hparams
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        eps = epsilon(hp, state.update_idx / config.num_updates)
        policy = q_learning.exploring_policy(q_values, state.params, eps)
        traj, env_state, obs, _ = collect_rollout(env, env_params, policy, state.env_state, state.obs, rollout_key,
                                                  config.num_steps)
        buffer = replay.add(state.buffer, replay.Step.of(traj))
        # Only the priorities pass through the branches and the gradient steps: the storage is only read there.
        skipped = jax.eval_shape(learn, state, buffer, learn_key)
        params, opt_state, priorities, max_priority, stats = jax.lax.cond(
            state.update_idx + 1 > learning_starts,
            lambda: learn(state, buffer, learn_key),
            lambda: (state.params, state.opt_state, buffer.priorities, buffer.max_priority,
                     jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), skipped[4])))
        buffer = buffer.replace(priorities=priorities, max_priority=max_priority)
        target_params = jax.lax.cond((state.update_idx + 1) % target_every == 0,
                                     lambda: optax.incremental_update(params, state.target_params, hp["tau"]),
                                     lambda: state.target_params)
        metrics = stats | episode_metrics(traj) | {"epsilon": eps}
        return RunnerState(params, target_params, opt_state, buffer, env_state, obs, key, state.update_idx + 1,
                           hp), metrics

    def guarded(state: RunnerState):
        """The networks and the optimiser diverge; the buffer holds what the envs gave (possibly inf)."""
        learned = lambda tree: jax.tree.map(lambda _: True, tree)  # noqa: E731
        return jax.tree.map(lambda _: False, state).replace(params=learned(state.params),
                                                            target_params=learned(state.target_params),
                                                            opt_state=learned(state.opt_state))

    return Program(init, update, config.num_updates, config.steps_per_update, config.updates_per_chunk,
                   env_axes=lambda state: vec_env_axes(state, env, buffer=replay.env_axes(state.buffer)),
                   env_shards=config.num_envs, guarded=guarded, log_every=config.log_every,
                   sized_by={"buffer": "buffer_size"})


def policy_state(state: RunnerState) -> dict:
    """What the trained policy needs: the online network's parameters."""
    return {"params": state.params}


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action`: the greedy action, or when `stochastic` epsilon-greedy
    at eps_end with `key`; obs [*obs_shape] or batched."""
    network, head = make_network(config, env, env_params)
    return q_learning.make_act(q_learning.q_values_of(network, head), config.eps_end, stochastic)


ALGORITHM = Algorithm("dqn", "Deep Q-Networks (double, dueling, n-step, prioritised replay), discrete actions",
                      Config, make_program, policy_state, make_policy)
make_train = ALGORITHM.make_train
