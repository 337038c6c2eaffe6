"""What the off-policy actor-critics for continuous actions (SAC, TD3) share: their replay and schedule config
fields, the runner state, and the update skeleton

    collect_rollout (num_envs x num_steps env steps) -> replay.add (raw observations) -> observation statistics
    -> once `learning_starts` env steps are in: `gradient_steps` gradient steps on replayed batches,
       each observation normalised with the current statistics at the network input

so an algorithm module supplies only its learner (networks, targets, optimiser states), how it acts, and one
gradient step. The buffer keeps raw observations so that what it stores stays valid as the statistics move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxrl import envs, replay
from jaxrl.algos.base import EnvFamilyConfig, Program, RolloutSchedule
from jaxrl.config import ConfigError, SeedFields, check_run_fields, dynamic, run, static, validate_fields
from jaxrl.devices import vec_env_axes
from jaxrl.networks import ACTIVATIONS, INITS
from jaxrl.normalize import RunningStats, init_stats, normalize, update_stats
from jaxrl.rollout import collect_rollout, episode_metrics

LOGGED_ROWS = 500  # about this many metrics rows per run, however many (tiny) updates it has


def logged_every(num_updates: int, updates_per_chunk: int) -> int:
    """Updates per logged row: about LOGGED_ROWS rows, a divisor of updates_per_chunk when that is set."""
    most = max(1, num_updates // LOGGED_ROWS)
    if not updates_per_chunk:
        return most
    return max(d for d in range(1, min(most, updates_per_chunk) + 1) if updates_per_chunk % d == 0)


@dataclass(frozen=True)
class ReplaySchedule(RolloutSchedule):
    """The replay fields of DQN, SAC and TD3 (defaults: Rejax's SAC on Pendulum-v1), and what follows from them
    with num_envs, total_timesteps and updates_per_chunk: the update counts, the logging cadence and the checks
    made before compiling."""

    num_envs: int = 1
    num_steps: int = static(1, "steps of every env per update (vectorised), before its gradient steps", low=1)
    gradient_steps: int = static(1, "gradient steps per update of num_envs*num_steps env steps, once learning has "
                                    "started (Rejax's num_epochs, Brax's grad_updates_per_step)", low=1)
    buffer_size: int = static(10_000, "replay capacity in transitions per seed; a multiple of num_envs", low=1)
    batch_size: int = static(256, "replayed transitions per gradient step", low=1)
    learning_starts: int = static(256, "env steps per seed (all envs) collected before the first gradient step "
                                       "(Rejax's fill_buffer, Brax's min_replay_size)", low=0)

    def check_replay(self) -> None:
        per_update = self.steps_per_update
        if self.total_timesteps < per_update:
            raise ConfigError(f"total_timesteps={self.total_timesteps} is smaller than one update "
                              f"(num_envs*num_steps={self.num_envs}*{self.num_steps}={per_update})")
        if self.buffer_size % self.num_envs:
            raise ConfigError(f"buffer_size={self.buffer_size} is not a multiple of num_envs={self.num_envs} (the "
                              f"buffer holds rows of one step of every env)")
        if self.buffer_size < per_update:
            raise ConfigError(f"buffer_size={self.buffer_size} cannot hold one update's "
                              f"num_envs*num_steps={per_update} steps")
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size} is larger than buffer_size={self.buffer_size}")
        if self.learning_starts >= self.num_updates * per_update:
            raise ConfigError(f"learning_starts={self.learning_starts} leaves no gradient step: the run collects "
                              f"{self.num_updates * per_update} env steps (total_timesteps={self.total_timesteps})")

    @property
    def log_every(self) -> int:
        return logged_every(self.num_updates, self.updates_per_chunk)


@dataclass(frozen=True)
class OffPolicyConfig(ReplaySchedule, EnvFamilyConfig, SeedFields):
    """Fields of an off-policy actor-critic for continuous actions. The defaults are Rejax's SAC config for
    Pendulum-v1 (github.com/keraJLi/rejax, configs/gymnax/pendulum.yaml), with 2e4 env steps instead of 1e4."""

    # static: shapes and program structure (each algorithm's config declares its `env` first; the replay
    # fields are ReplaySchedule's)
    random_warmup: bool = static(False, "before learning starts, act uniformly at random in the action bounds "
                                        "(else with the initial policy)")
    target_update: str = static("gradient_step", "when the target networks move tau of the way to the online ones: "
                                                 "after every (actor) gradient step (SB3, Brax) or once per update "
                                                 "(Rejax)", choices=("gradient_step", "update"))
    normalize_obs: bool = static(True, "standardise observations at the network inputs with running statistics "
                                       "(the buffer keeps raw observations)")
    hidden_sizes: tuple[int, ...] = static((64, 64), "hidden layer widths of the actor and of each critic", low=1)
    activation: str = static("silu", "hidden activation (silu is swish)", choices=tuple(ACTIVATIONS))
    weight_init: str = static("lecun", "weight initialisation: lecun (flax's default, as Rejax and Brax) or "
                                       "orthogonal", choices=INITS)
    # dynamic: traced numbers, may differ per run inside one program
    lr: float = dynamic(0.01, "Adam learning rate of the actor and the critics", low=0.0, low_open=True)
    gamma: float = dynamic(0.99, "discount", low=0.0, high=1.0)
    tau: float = dynamic(0.02, "at each target update the targets move this fraction of the way to the online "
                               "networks (Rejax's polyak is 1 - tau)", low=0.0, low_open=True, high=1.0)
    max_grad_norm: float = dynamic(0.0, "global gradient-norm clip of each network (0: no clipping)", low=0.0)
    # run: host-side only
    total_timesteps: int = run(20_000, "env steps per seed", low=1)

    def __post_init__(self):
        validate_fields(self)
        self.check_replay()
        check_run_fields(self)


@struct.dataclass
class RunnerState:
    learner: Any  # the algorithm's networks, target networks and optimiser states
    obs_stats: RunningStats  # of the raw observations collected so far (unused without normalize_obs)
    buffer: replay.ReplayBuffer  # raw transitions, storage [buffer_size / num_envs, num_envs, ...]
    env_state: Any
    obs: jax.Array  # [num_envs, *obs_shape], raw
    key: jax.Array
    update_idx: jax.Array  # updates done so far
    hparams: dict  # dynamic config fields as traced scalars


@dataclass(frozen=True)
class ActionBox:
    """A continuous env's action space as the actors see it: `dim` numbers in [-1, 1] mapped onto [low, high]."""

    low: np.ndarray  # [dim]
    high: np.ndarray
    dim: int
    obs_ndim: int


def action_box(config, env: envs.Environment, env_params, algo: str) -> ActionBox:
    """The env's bounded Box action space, or a ConfigError naming the env."""
    if env.num_agents is not None:
        raise ConfigError(f"{algo} is a single-agent algorithm; {config.env} has {env.num_agents} agents")
    space = env.action_space(env_params)
    if not isinstance(space, envs.Box):
        raise ConfigError(f"{algo} needs continuous actions; {config.env} has a discrete action space "
                          f"({space.n} actions): use dqn, pqn or ppo")
    if len(space.shape) != 1 or not space.bounded:
        raise ConfigError(f"{algo} needs a bounded vector action space; {config.env} has low={space.low.tolist()} "
                          f"high={space.high.tolist()}")
    return ActionBox(space.low, space.high, space.shape[0], len(env.observation_space(env_params).shape))


def network_input(config, obs_stats: RunningStats, obs):
    """Observations as the networks read them: standardised with `obs_stats` under normalize_obs."""
    return normalize(obs_stats, obs) if config.normalize_obs else obs


def policy_state(state: RunnerState) -> dict:
    """What the trained policy needs (each algorithm's learner has an `actor`): the actor's parameters and the
    observation statistics."""
    stats = state.obs_stats
    return {"params": state.learner.actor, "obs_stats": {"mean": stats.mean, "var": stats.var, "count": stats.count}}


def make_program(config, base_env: envs.Environment, init_learner: Callable, act: Callable, gradient_step: Callable,
                 move_targets: Callable) -> Program:
    """The Program of an off-policy actor-critic on `base_env` (the env of `config.env`) from its parts:

    - `init_learner(key, obs [num_envs, *obs_shape], hp) -> learner`;
    - `act(learner, key, obs, hp) -> action [num_envs, dim]` in the env's bounds, exploring (obs normalised);
    - `gradient_step(learner, batch, key, hp) -> (learner, stats)` on a replayed batch (obs normalised);
    - `move_targets(learner, hp) -> learner`: the Polyak step of the target networks, applied here after an
      update's gradient steps with target_update=update (the algorithm applies it itself per gradient step).
    """
    env_params = base_env.default_params
    env = envs.make_vec_env(base_env, config.num_envs)
    space = base_env.action_space(env_params)
    obs_shape = base_env.observation_space(env_params).shape
    per_update = config.steps_per_update

    def init(key, hp):
        key, net_key, env_key = jax.random.split(key, 3)
        obs, env_state = env.reset(env_key, env_params)
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
        learner = init_learner(net_key, obs, hp)
        flags = jnp.zeros(config.num_envs, bool)
        example = replay.Step(obs, jnp.zeros((config.num_envs,) + space.shape, jnp.float32),
                              jnp.zeros(config.num_envs, jnp.float32), flags, flags, obs)
        buffer = replay.create(example, config.buffer_size)
        return RunnerState(learner, init_stats(obs_shape), buffer, env_state, obs, key, jnp.int32(0), hp)

    def behaviour(state: RunnerState, learned):
        """The exploring policy for collect_rollout; uniform in the bounds until it has learned (random_warmup)."""
        def policy(key, obs):
            action = act(state.learner, key, network_input(config, state.obs_stats, obs), state.hparams)
            if config.random_warmup:
                uniform = jax.random.uniform(jax.random.fold_in(key, 1), action.shape, minval=space.low,
                                             maxval=space.high)
                action = jnp.where(learned, action, uniform)
            return action, {}
        return policy

    def learn(learner, buffer, obs_stats, hp, key):
        def step(learner, step_key):
            sample_key, loss_key = jax.random.split(step_key)
            batch = replay.sample(buffer, sample_key, config.batch_size, hp["gamma"])
            batch = batch.replace(obs=network_input(config, obs_stats, batch.obs),
                                  next_obs=network_input(config, obs_stats, batch.next_obs))
            return gradient_step(learner, batch, loss_key, hp)

        learner, stats = jax.lax.scan(step, learner, jax.random.split(key, config.gradient_steps))
        if config.target_update == "update":
            learner = move_targets(learner, hp)
        return learner, {k: v.mean() for k, v in stats.items()}

    def update(state: RunnerState):
        hp = state.hparams
        key, rollout_key, learn_key = jax.random.split(state.key, 3)
        # Learning starts once more than `learning_starts` env steps are in (as Rejax's and PureJaxRL's).
        started = (state.update_idx + 1) * per_update > config.learning_starts
        learned = state.update_idx * per_update > config.learning_starts  # an earlier update took gradient steps
        traj, env_state, obs, _ = collect_rollout(env, env_params, behaviour(state, learned), state.env_state,
                                                  state.obs, rollout_key, config.num_steps)
        buffer = replay.add(state.buffer, replay.Step.of(traj))
        obs_stats = update_stats(state.obs_stats, traj.next_obs) if config.normalize_obs else state.obs_stats
        skipped = jax.eval_shape(learn, state.learner, buffer, obs_stats, hp, learn_key)[1]
        learner, stats = jax.lax.cond(
            started, lambda: learn(state.learner, buffer, obs_stats, hp, learn_key),
            lambda: (state.learner, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), skipped)))
        metrics = stats | episode_metrics(traj)
        return RunnerState(learner, obs_stats, buffer, env_state, obs, key, state.update_idx + 1, hp), metrics

    def guarded(state: RunnerState):
        """The networks, optimisers and statistics diverge; the buffer holds what the envs gave (possibly inf)."""
        every = lambda tree: jax.tree.map(lambda _: True, tree)  # noqa: E731
        return jax.tree.map(lambda _: False, state).replace(learner=every(state.learner),
                                                            obs_stats=every(state.obs_stats))

    return Program(init, update, config.num_updates, per_update, config.updates_per_chunk,
                   env_axes=lambda state: vec_env_axes(state, env, buffer=replay.env_axes(state.buffer)),
                   env_shards=config.num_envs, guarded=guarded, log_every=config.log_every,
                   sized_by={"buffer": "buffer_size"})
