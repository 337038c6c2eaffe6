"""What the streaming learners (stream_ac, stream_q; Elsayed, Vasan and Mahmood 2024, "Streaming Deep
Reinforcement Learning Finally Works", arXiv 2410.14606) share: the ObGD step with eligibility traces, sparse
initialisation, the LayerNorm + leaky-ReLU network, observation and reward normalisation, their config fields
and the update skeleton

    act on the standardised observation -> one env step -> observation and return statistics updated with what
    arrived -> one learning step on that single transition (batch size 1, no replay) -> traces reset at episode ends

Each learner is one env; independent learners are the seeds, vmapped in one program. Every update is one env step,
so the metrics of many updates are aggregated on the device (`Program.log_every`).

Follows the reference code (github.com/mohmdelsayed/streaming-drl: optim.py, sparse_init.py,
normalization_wrappers.py) except where said: truncations (time limits) bootstrap from the final observation
instead of being treated as terminal, so the episode-time input feature of its time_wrapper.py is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import envs
from jaxrl.algos.base import EnvFamilyConfig, Program
from jaxrl.algos.off_policy import logged_every
from jaxrl.config import ConfigError, check_run_fields, dynamic, run, static, validate_fields
from jaxrl.networks import flatten_obs
from jaxrl.normalize import RunningStats, init_stats, update_stats
from jaxrl.rollout import collect_rollout, episode_metrics

NORM_EPS = 1e-8  # added to variances before the square root (the reference's wrappers)


# --- ObGD: overshooting-bounded gradient descent with eligibility traces ---

def obgd_step(params, trace, grad, delta, lr, trace_decay, kappa, reset):
    """One ObGD step on pytrees: the trace decays by `trace_decay` (gamma * lambda) and adds `grad` (the gradient
    of the prediction: the value, the taken action's Q or the policy objective); the parameters move along
    `delta * trace` by a step size lr, cut to 1 / (kappa * max(|delta|, 1) * ||trace||_1) where the TD error
    could otherwise overshoot. The trace is zeroed after the step where `reset` (episode end; non-greedy action
    in Q(lambda)). Returns (params, trace, effective step size)."""
    trace = jax.tree.map(lambda z, g: trace_decay * z + g, trace, grad)
    trace_norm = sum(jnp.abs(z).sum() for z in jax.tree.leaves(trace))
    delta_bar = jnp.maximum(jnp.abs(delta), 1.0)
    step_size = lr / jnp.maximum(lr * kappa * delta_bar * trace_norm, 1.0)
    params = jax.tree.map(lambda p, z: p + step_size * delta * z, params, trace)
    trace = jax.tree.map(lambda z: jnp.where(reset, 0.0, z), trace)
    return params, trace, step_size


# --- network ---

def sparse_init(sparsity: float) -> Callable:
    """Kernel initialiser [fan_in, fan_out]: uniform in +-1/sqrt(fan_in), then exactly ceil(sparsity * fan_in) of
    every output unit's inputs zeroed, chosen at random per unit (the reference's sparse_init.py)."""

    def init(key, shape, dtype=jnp.float32):
        fan_in = shape[0]
        bound = 1.0 / math.sqrt(fan_in)
        weight_key, order_key = jax.random.split(key)
        weights = jax.random.uniform(weight_key, shape, dtype, -bound, bound)
        # Each column's rank of a random key: a random permutation of 0..fan_in-1 per output unit.
        rank = jnp.argsort(jnp.argsort(jax.random.uniform(order_key, shape), axis=0), axis=0)
        return jnp.where(rank < zeroed_inputs(sparsity, fan_in), 0.0, weights).astype(dtype)

    return init


def zeroed_inputs(sparsity: float, fan_in: int) -> int:
    return int(math.ceil(sparsity * fan_in))


class StreamNetwork(nn.Module):
    """The paper's network: per hidden layer a sparse-initialised dense layer (zero biases), LayerNorm without
    affine parameters, leaky ReLU; then a sparse-initialised linear head. [..., *obs_shape] -> [..., out_features]."""

    hidden_sizes: Sequence[int]
    out_features: int
    obs_ndim: int = 1
    sparsity: float = 0.9

    @nn.compact
    def __call__(self, obs):
        x = flatten_obs(obs, self.obs_ndim)
        for size in self.hidden_sizes:
            x = nn.Dense(size, kernel_init=sparse_init(self.sparsity))(x)
            # torch's layer_norm epsilon, as the reference
            x = nn.leaky_relu(nn.LayerNorm(epsilon=1e-5, use_bias=False, use_scale=False)(x))
        return nn.Dense(self.out_features, kernel_init=sparse_init(self.sparsity))(x)


# --- observation and reward normalisation (Welford, jaxrl.normalize) ---

def sample_variance(stats: RunningStats) -> jax.Array:
    """The unbiased variance of the samples merged so far, 1 before two (the reference's SampleMeanStd)."""
    return jnp.where(stats.count < 2, 1.0, stats.var * stats.count / jnp.maximum(stats.count - 1, 1e-8))


def standardize(stats: RunningStats, x: jax.Array) -> jax.Array:
    return (x - stats.mean) / jnp.sqrt(sample_variance(stats) + NORM_EPS)


def tree_where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


# --- config ---

@dataclass(frozen=True)
class StreamConfig(EnvFamilyConfig):
    """Fields of a streaming learner (each algorithm's config declares its `env` first). Defaults: the reference
    scripts for classic control (stream_ac_discrete.py, stream_q.py: hidden_size 32, lr 1, gamma 0.99, lamda 0.8,
    sparsity 0.9)."""

    # static: shapes and program structure
    num_envs: int = static(1, "envs per learner: always 1 (batch size 1); train independent learners with "
                              "num_seeds", low=1)
    hidden_sizes: tuple[int, ...] = static((32, 32), "hidden layer widths of each network (the reference's "
                                                     "continuous-control script uses [128, 128])", low=1)
    sparsity: float = static(0.9, "fraction of each unit's inputs zeroed at initialisation (rounded up)", low=0.0,
                             high=1.0)
    updates_per_chunk: int = static(0, "updates (env steps) per compiled chunk between host callbacks (0: chunks "
                                       "of about a second)", low=0)
    # dynamic: traced numbers, may differ per run inside one program
    lr: float = dynamic(1.0, "ObGD step size before its overshooting bound", low=0.0, low_open=True)
    gamma: float = dynamic(0.99, "discount (also of the return whose running std scales the rewards)", low=0.0,
                           high=1.0)
    td_lambda: float = dynamic(0.8, "eligibility-trace decay lambda (traces decay by gamma * lambda)", low=0.0,
                               high=1.0)
    # run: host-side only
    total_timesteps: int = run(500_000, "env steps per learner (one update each)", low=1)
    seed: int = run(0, "seed of the first learner; learner i uses seed + i", low=0)
    num_seeds: int = run(1, "independent learners trained together in one program (vmapped)", low=1)

    num_steps = 1  # env steps per update
    steps_per_update = 1

    @property
    def num_updates(self) -> int:
        return self.total_timesteps

    @property
    def log_every(self) -> int:
        return logged_every(self.num_updates, self.updates_per_chunk)

    def __post_init__(self):
        validate_fields(self)
        if self.num_envs != 1:
            raise ConfigError(f"num_envs={self.num_envs}: a streaming learner learns from one env (batch size 1); "
                              f"train independent learners together with num_seeds")
        check_run_fields(self)


# --- the program ---

@struct.dataclass
class Learner:
    params: dict  # network name -> parameters
    trace: dict  # network name -> its eligibility trace (the parameters' shapes)


def init_learner(networks: dict[str, nn.Module], key: jax.Array, obs: jax.Array) -> Learner:
    params = {name: net.init(k, obs) for (name, net), k in zip(networks.items(), jax.random.split(key, len(networks)))}
    return Learner(params, jax.tree.map(jnp.zeros_like, params))


@struct.dataclass
class RunnerState:
    learner: Learner
    obs_stats: RunningStats  # of every raw observation seen (reset and step)
    return_stats: RunningStats  # of the discounted return, whose std scales the rewards
    discounted_return: jax.Array  # [1]
    env_state: Any
    obs: jax.Array  # [1, *obs_shape], standardised when it arrived
    key: jax.Array
    update_idx: jax.Array  # updates (env steps) done so far
    hparams: dict  # dynamic config fields as traced scalars


@struct.dataclass
class Step:
    """One transition as a learner sees it (no env axis): standardised observations, scaled reward."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array  # the true next observation (the final one at an episode end)
    terminated: jax.Array
    done: jax.Array  # terminated or truncated: traces reset
    extras: dict  # what `act` returned beside the action


def check_single_agent(config, env: envs.Environment, algo: str) -> None:
    if env.num_agents is not None:
        raise ConfigError(f"{algo} is a single-agent algorithm; {config.env} has {env.num_agents} agents")


def make_program(config, base_env: envs.Environment, networks: dict[str, nn.Module], act: Callable,
                 learn: Callable) -> Program:
    """The Program of a streaming learner on `base_env` from its parts:

    - `networks`: name -> flax module, each initialised sparsely with a zero trace (`Learner`);
    - `act(learner, key, obs [1, *obs_shape], hp, progress) -> (action [1, ...], extras)`, progress the fraction
      of the run done;
    - `learn(learner, step: Step, hp) -> (learner, stats)`: one update on one transition.
    """
    env_params = base_env.default_params
    env = envs.make_vec_env(base_env, 1)
    obs_shape = base_env.observation_space(env_params).shape

    def init(key, hp):
        key, net_key, env_key = jax.random.split(key, 3)
        raw_obs, env_state = env.reset(env_key, env_params)
        hp = {k: jnp.asarray(v, jnp.float32) for k, v in hp.items()}
        obs_stats = update_stats(init_stats(obs_shape), raw_obs)
        obs = standardize(obs_stats, raw_obs)
        return RunnerState(init_learner(networks, net_key, obs), obs_stats, init_stats(()), jnp.zeros(1), env_state,
                           obs, key, jnp.int32(0), hp)

    def update(state: RunnerState):
        hp = state.hparams
        key, rollout_key = jax.random.split(state.key)
        progress = state.update_idx / config.num_updates
        policy = lambda k, obs: act(state.learner, k, obs, hp, progress)  # noqa: E731
        traj, env_state, reset_obs, _ = collect_rollout(env, env_params, policy, state.env_state, state.obs,
                                                        rollout_key, 1)
        t = jax.tree.map(lambda x: x[0], traj)  # the one step, leaves [1, ...]
        # Every observation enters the statistics once, when it arrives: the step's, then at an episode end the
        # next episode's first (the reference's NormalizeObservation).
        obs_stats = update_stats(state.obs_stats, t.next_obs)
        next_obs = standardize(obs_stats, t.next_obs)
        after_reset = update_stats(obs_stats, reset_obs)
        ended = t.done.reshape(t.done.shape + (1,) * len(obs_shape))
        obs = jnp.where(ended, standardize(after_reset, reset_obs), next_obs)
        obs_stats = tree_where(t.done[0], after_reset, obs_stats)
        # The reference's ScaleReward: the return trace restarts on the step that ends an episode.
        discounted_return = state.discounted_return * hp["gamma"] * (1.0 - t.done) + t.reward
        return_stats = update_stats(state.return_stats, discounted_return)
        reward_scale = 1.0 / jnp.sqrt(sample_variance(return_stats) + NORM_EPS)
        step = Step(t.obs[0], t.action[0], t.reward[0] * reward_scale, next_obs[0], t.terminated[0], t.done[0],
                    jax.tree.map(lambda x: x[0], t.extras))
        learner, stats = learn(state.learner, step, hp)
        metrics = stats | episode_metrics(traj) | {"reward_scale": reward_scale}
        return RunnerState(learner, obs_stats, return_stats, discounted_return, env_state, obs, key,
                           state.update_idx + 1, hp), metrics

    # One env per learner: the learners (runs) split over devices, never a learner's env.
    return Program(init, update, config.num_updates, 1, config.updates_per_chunk, log_every=config.log_every)


def policy_state(state: RunnerState) -> dict:
    """What the trained policy needs: the networks' parameters and the observation statistics."""
    stats = state.obs_stats
    return {"params": state.learner.params, "obs_stats": {"mean": stats.mean, "var": stats.var, "count": stats.count}}


def policy_input(pstate: dict, obs: jax.Array) -> jax.Array:
    """A raw observation as the trained networks read it."""
    return standardize(RunningStats(**pstate["obs_stats"]), obs)
