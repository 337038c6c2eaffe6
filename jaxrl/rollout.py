"""Vectorised rollouts: collection for on-policy learning, and deterministic evaluation episodes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs import AgentView, ClipAction, EpisodeStatistics, Vectorize


@struct.dataclass
class Transition:
    """One step of `num_envs` environments; stacked by `collect_rollout` to [T, num_envs, ...]."""

    obs: jax.Array  # [N, *obs_shape]
    action: jax.Array  # [N, *act_shape]
    reward: jax.Array  # [N]
    terminated: jax.Array  # [N]
    done: jax.Array  # [N] terminated | truncated
    next_obs: jax.Array  # [N, *obs_shape] true next observation (final one at episode ends)
    extras: dict  # policy outputs, e.g. log_prob and value
    episode_done: jax.Array  # [N] an episode finished at this step
    episode_return: jax.Array  # [N] its return (valid where episode_done)
    episode_length: jax.Array  # [N]


def collect_rollout(
    env,
    env_params,
    policy: Callable[[jax.Array, jax.Array], tuple[jax.Array, dict]],
    env_state: Any,
    obs: jax.Array,
    key: jax.Array,
    num_steps: int,
    unroll: int = 1,
    memory: Any = None,
):
    """Step a vectorised env (`make_vec_env`) `num_steps` times with `policy(key, obs)`.

    A recurrent policy passes its `memory` (per-env state such as GRU hidden states, leaves
    [N, ...]) and is called as `policy(key, obs, memory) -> (action, extras, memory)`; the
    memory of an env whose episode ended is zeroed before its next step.

    Returns (transitions [num_steps, N, ...], final env_state, final obs, final memory).
    """

    def step(carry, step_key):
        env_state, obs, memory = carry
        policy_key, env_key = jax.random.split(step_key)
        if memory is None:
            action, extras = policy(policy_key, obs)
        else:
            action, extras, memory = policy(policy_key, obs, memory)
        next_obs, env_state, reward, terminated, truncated, info = env.step(env_key, env_state, action, env_params)
        done = jnp.logical_or(terminated, truncated)
        if memory is not None:
            memory = reset_memory(memory, done)
        transition = Transition(
            obs=obs,
            action=action,
            reward=reward,
            terminated=terminated,
            done=done,
            next_obs=info["final_obs"],
            extras=extras,
            episode_done=info["episode_done"],
            episode_return=info["episode_return"],
            episode_length=info["episode_length"],
        )
        return (env_state, next_obs, memory), transition

    (env_state, obs, memory), transitions = jax.lax.scan(
        step, (env_state, obs, memory), jax.random.split(key, num_steps), unroll=unroll
    )
    return transitions, env_state, obs, memory


def minibatch_split(num_minibatches: int, num_steps: int) -> tuple[int, int]:
    """(time splits, env groups) whose product is num_minibatches: time splits divide num_steps and, when
    num_minibatches divides num_envs*num_steps, env groups divide num_envs."""
    time_splits = math.gcd(num_minibatches, num_steps)
    return time_splits, num_minibatches // time_splits


def rollout_minibatches(key: jax.Array, batch: Any, num_minibatches: int) -> Any:
    """Leaves [T, N, ...] -> [num_minibatches, T*N/num_minibatches, ...]: each env's steps in its own random
    order, split in time; envs in fixed strided groups (`minibatch_split`). A minibatch so holds the same
    number of steps from every block of envs, and a data-parallel run (envs sharded over devices, see
    jaxrl.devices) forms exactly the minibatches of a one-device run."""
    num_steps, num_envs = jax.tree.leaves(batch)[0].shape[:2]
    time_splits, env_groups = minibatch_split(num_minibatches, num_steps)
    n, t = num_envs // env_groups, num_steps // time_splits
    order = jax.vmap(lambda k: jax.random.permutation(k, num_steps))(jax.random.split(key, num_envs))

    def split(x):
        x = jax.vmap(lambda xe, o: xe[o], in_axes=(1, 0))(x, order)  # [N, T, ...]
        x = jnp.moveaxis(x.reshape((n, env_groups, time_splits, t) + x.shape[2:]), (1, 2), (0, 1))
        return x.reshape((num_minibatches, n * t) + x.shape[4:])

    return jax.tree.map(split, batch)


def sequence_minibatches(key: jax.Array, steps: Any, first_memory: Any, num_minibatches: int) -> tuple[Any, Any]:
    """Whole sequences in random order, for recurrent policies: steps leaves [T, S, ...] and the memory
    before each sequence's first step, leaves [S, ...] -> ([M, T, S/M, ...], [M, S/M, ...])."""
    order = jax.random.permutation(key, jax.tree.leaves(first_memory)[0].shape[0])
    steps = jax.tree.map(
        lambda x: jnp.moveaxis(x[:, order].reshape((x.shape[0], num_minibatches, -1) + x.shape[2:]), 1, 0), steps)
    return steps, jax.tree.map(lambda m: m[order].reshape((num_minibatches, -1) + m.shape[1:]), first_memory)


def episode_starts(done: jax.Array) -> jax.Array:
    """done [T, ...] -> [T, ...]: the steps that start an episode within a rollout (the previous one ended),
    where a replayed memory is zeroed as the rollout zeroed it."""
    return jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]])


def reset_memory(memory: Any, done: jax.Array) -> Any:
    """Zero the memory (leaves [*done.shape, ...]) of every env or agent that is done."""
    return jax.tree.map(lambda m: jnp.where(done.reshape(done.shape + (1,) * (m.ndim - done.ndim)), 0, m), memory)


def episode_metrics(transitions: Transition) -> dict[str, jax.Array]:
    """Sums over finished episodes (fixed shape; the host divides by the count)."""
    done = transitions.episode_done.astype(jnp.float32)
    return {
        "episodes": done.sum(),
        "episode_return_sum": (transitions.episode_return * done).sum(),
        "episode_length_sum": (transitions.episode_length * done).sum(),
    }


@dataclass(frozen=True)
class RecurrentPolicy:
    """A policy with memory: `act(policy_state, obs, memory) -> (action, memory)`, starting from
    `initial_memory(num_envs)`."""

    act: Callable
    initial_memory: Callable


def evaluate_policy(env, env_params, act, policy_state, key, episodes: int, max_steps: int = 100_000):
    """Run `episodes` episodes in parallel with `act(policy_state, obs) -> action` (or a
    `RecurrentPolicy`) until each ends.

    Multi-agent envs hand `act` AgentView observations, and an episode's return is the
    team's: summed over agents.
    Returns (returns [episodes], lengths [episodes], finished [episodes] bool).
    """
    if env.num_agents is not None:
        env = AgentView(env)
    venv = Vectorize(EpisodeStatistics(ClipAction(env)), episodes)
    key, reset_key = jax.random.split(key)
    obs, state = venv.reset(reset_key, env_params)
    zeros = jnp.zeros(episodes)
    recurrent = isinstance(act, RecurrentPolicy)

    def not_finished(carry):
        t, _, _, _, done, _, _, _ = carry
        return jnp.logical_and(t < max_steps, ~jnp.all(done))

    def step(carry):
        t, key, obs, state, done, returns, lengths, memory = carry
        key, step_key = jax.random.split(key)
        if recurrent:
            action, memory = act.act(policy_state, obs, memory)
        else:
            action = act(policy_state, obs)
        obs, state, _, _, _, info = venv.step(step_key, state, action, env_params)
        if recurrent:
            memory = reset_memory(memory, info["episode_done"])
        first_end = jnp.logical_and(info["episode_done"], ~done)
        episode_return = info["episode_return"] if env.num_agents is None else info["episode_return"].sum(-1)
        returns = jnp.where(first_end, episode_return, returns)
        lengths = jnp.where(first_end, info["episode_length"], lengths)
        return t + 1, key, obs, state, jnp.logical_or(done, info["episode_done"]), returns, lengths, memory

    memory = act.initial_memory(episodes) if recurrent else None
    carry = (0, key, obs, state, jnp.zeros(episodes, bool), zeros, zeros, memory)
    _, _, _, _, done, returns, lengths, _ = jax.lax.while_loop(not_finished, step, carry)
    return returns, lengths, done
