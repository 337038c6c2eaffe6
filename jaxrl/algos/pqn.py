"""Parallel Q-Learning, PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning").

Many parallel envs replace the replay buffer and LayerNorm replaces the target network: each update
collects a rollout epsilon-greedily, computes Q(λ) targets on it, and regresses the Q-values of the
actions taken towards them for a few epochs of minibatches. Discrete actions; scalar or categorical
Q-values (`value_head`).

Reads top to bottom: config, `make_program` (init + one update, on the runner state
`jaxrl.algos.base.RolloutState`: collect_rollout -> compute_targets -> update_epochs), `policy_state`
and `make_policy` (the greedy policy used by `jaxrl eval`), and the `ALGORITHM` it declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl import envs, loop
from jaxrl.algos import q_learning
from jaxrl.algos.base import Algorithm, EnvFamilyConfig, Program, RolloutSchedule, RolloutState, make_env
from jaxrl.config import ConfigError, SeedFields, check_run_fields, dynamic, run, static, validate_fields
from jaxrl.devices import vec_env_axes
from jaxrl.distributions import EpsilonGreedyHyperparameters, epsilon
from jaxrl.losses import ValueHeadConfig, lambda_returns
from jaxrl.networks import ACTIVATIONS, ConvTorso, QNetwork
from jaxrl.optim import rollout_epochs
from jaxrl.rollout import collect_rollout, episode_metrics, minibatch_split


@dataclass(frozen=True)
class Config(RolloutSchedule, ValueHeadConfig, EpsilonGreedyHyperparameters, ConvTorso, EnvFamilyConfig, SeedFields):
    # static: shapes and program structure (defaults: purejaxql's gymnax config, see PRESETS; num_steps:
    # RolloutSchedule's)
    env: str = static("gymnax:CartPole-v1", "environment id (see `jaxrl envs`)")
    num_envs: int = 32
    update_epochs: int = static(4, "passes over each rollout", low=1)
    num_minibatches: int = static(16, "minibatches per epoch; must divide num_envs*num_steps", low=1)
    hidden_sizes: tuple[int, ...] = static((256, 256), "hidden layer widths of the Q-network", low=1)
    activation: str = static("relu", "hidden activation", choices=tuple(ACTIVATIONS))
    layer_norm: bool = static(True, "LayerNorm before every hidden activation (what lets PQN drop the target "
                                    "network)")
    anneal_lr: bool = static(True, "decay the learning rate linearly to 0 over the run")
    unroll: int = static(1, "loop unrolling of the rollout scan (speed/compile-time trade-off)", low=1)
    # dynamic: traced numbers, may differ per run inside one program
    lr: float = dynamic(1e-4, "Adam learning rate", low=0.0, low_open=True)
    gamma: float = dynamic(0.99, "discount", low=0.0, high=1.0)
    td_lambda: float = dynamic(0.95, "lambda of the Q(lambda) targets (0: one-step Q-learning, 1: Monte Carlo "
                                     "within the rollout)", low=0.0, high=1.0)
    max_grad_norm: float = dynamic(10.0, "global gradient-norm clip (0: no clipping)", low=0.0)
    reward_scale: float = dynamic(1.0, "factor on the rewards the targets are computed from (returns are "
                                       "reported unscaled)", low=0.0, low_open=True)
    # run: host-side only
    total_timesteps: int = run(500_000, "env steps per seed", low=1)

    def __post_init__(self):
        validate_fields(self)
        batch = self.steps_per_update
        if batch % self.num_minibatches:
            raise ConfigError(
                f"num_envs*num_steps={self.num_envs}*{self.num_steps}={batch} is not divisible by "
                f"num_minibatches={self.num_minibatches}"
            )
        if self.total_timesteps < batch:
            raise ConfigError(
                f"total_timesteps={self.total_timesteps} is smaller than one update "
                f"(num_envs*num_steps={batch})"
            )
        self.value_head_spec  # raises ConfigError for an empty categorical support
        check_run_fields(self)


# purejaxql's MinAtar config (purejaxql/config/alg/pqn_minatar.yaml) with its network (purejaxql/pqn_minatar.py:
# a 16-channel 3x3 VALID convolution and a 128-unit layer, each LayerNormed), for every MinAtar game.
MINATAR = dict(num_envs=128, num_steps=32, num_minibatches=32, update_epochs=2, conv_channels=(16,), conv_kernel=3,
               hidden_sizes=(128,), activation="relu", layer_norm=True, lr=5e-4, max_grad_norm=10.0, anneal_lr=True,
               gamma=0.99, td_lambda=0.65, eps_start=1.0, eps_end=0.05, eps_decay=0.1, reward_scale=1.0,
               total_timesteps=10_000_000)

# Reference configs, applied under the user's own settings. Not carried over from purejaxql: RAdam (jaxrl's
# optimiser is Adam, eps 1e-5), its learning rate decayed per gradient step rather than per update, and the
# Q-targets' treatment of time limits as terminal (here a truncated episode bootstraps from its final observation).
PRESETS: dict[str, dict[str, Any]] = {
    # purejaxql/config/alg/pqn_cartpole.yaml with purejaxql/pqn_gymnax.py's MLP (2 x 256, LayerNorm, ReLU)
    "gymnax:CartPole-v1": dict(num_envs=32, num_steps=64, num_minibatches=16, update_epochs=4,
                               hidden_sizes=(256, 256), activation="relu", layer_norm=True, lr=1e-4,
                               max_grad_norm=10.0, anneal_lr=True, gamma=0.99, td_lambda=0.95, eps_start=1.0,
                               eps_end=0.2, eps_decay=0.2, reward_scale=0.1, total_timesteps=500_000),
    **{f"gymnax:{game}-MinAtar": MINATAR for game in ("Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")},
}


def make_network(config: Config, env: envs.Environment, env_params) -> QNetwork:
    num_actions, obs_ndim, image_shape = q_learning.network_shape("pqn", config, env, env_params)
    return QNetwork(num_actions, obs_ndim, config.hidden_sizes, config.activation, config.layer_norm,
                    outputs=config.value_head_spec.outputs, conv_channels=config.conv_channels,
                    conv_kernel=config.conv_kernel, image_shape=image_shape)


def make_program(config: Config) -> loop.Program:
    base_env = make_env(config)
    env_params = base_env.default_params
    network = make_network(config, base_env, env_params)
    head = config.value_head_spec
    env = envs.make_vec_env(base_env, config.num_envs)
    q_values = q_learning.q_values_of(network, head)

    def init(key, hp):
        key, obs, env_state, params, opt_state = q_learning.start(network, env, env_params, key, hp["max_grad_norm"])
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
        return RolloutState(params, opt_state, env_state, obs, key, jnp.int32(0), jnp.int32(config.num_updates), hp)

    def compute_targets(params, traj, hp):
        next_q = q_values(params, traj.next_obs).max(-1)
        return lambda_returns(traj.reward * hp["reward_scale"], next_q, traj.terminated, traj.done,
                              hp["gamma"], hp["td_lambda"])

    def loss_fn(params, batch):
        obs, action, target = batch
        out = network.apply(params, obs)  # [B, action_dim, outputs]
        taken = jnp.take_along_axis(out, action[:, None, None], axis=1)[:, 0]  # [B, outputs]
        q = head.value(taken)
        if head.kind == "scalar":
            loss = 0.5 * jnp.square(q - target).mean()
        else:
            loss = head.cross_entropy(taken, target).mean()
        return loss, {"td_loss": loss, "q_mean": q.mean()}

    def update(state: RolloutState):
        hp = state.hparams
        key, rollout_key, epoch_key = jax.random.split(state.key, 3)
        progress = state.update_idx / state.num_updates
        eps = epsilon(hp, progress)
        policy = q_learning.exploring_policy(q_values, state.params, eps)
        traj, env_state, obs, _ = collect_rollout(env, env_params, policy, state.env_state, state.obs, rollout_key,
                                                  config.num_steps, config.unroll)
        targets = compute_targets(state.params, traj, hp)
        lr = hp["lr"] * (1.0 - progress) if config.anneal_lr else hp["lr"]
        batch = (traj.obs, traj.action, targets)
        params, opt_state, stats = rollout_epochs(loss_fn, state.params, state.opt_state, batch, epoch_key,
                                                  config.update_epochs, config.num_minibatches, lr, hp["max_grad_norm"])
        metrics = stats | episode_metrics(traj) | {"lr": lr, "epsilon": eps}
        new_state = RolloutState(params, opt_state, env_state, obs, key, state.update_idx + 1,
                                state.num_updates, hp)
        return new_state, metrics

    # Envs split over devices in blocks that keep the minibatches' env groups whole.
    _, env_groups = minibatch_split(config.num_minibatches, config.num_steps)
    return Program(init, update, config.num_updates, config.steps_per_update, config.updates_per_chunk,
                   env_axes=lambda state: vec_env_axes(state, env), env_shards=config.num_envs // env_groups)


def policy_state(state: RolloutState) -> dict:
    """What a trained policy needs outside training: the Q-network's parameters."""
    return {"params": state.params}


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action`: the greedy action, or when `stochastic` the
    epsilon-greedy one at the end of training's epsilon (eps_end), drawn with `key`; obs [*obs_shape] or batched."""
    q_values = q_learning.q_values_of(make_network(config, env, env_params), config.value_head_spec)
    return q_learning.make_act(q_values, config.eps_end, stochastic)


ALGORITHM = Algorithm("pqn", "Parallel Q-Learning: Q(lambda) on parallel envs with a LayerNorm Q-network, no replay "
                      "or target network; discrete actions", Config, make_program, policy_state, make_policy, PRESETS)
make_train = ALGORITHM.make_train
