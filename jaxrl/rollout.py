"""Vectorised rollout collection shared by on-policy algorithms."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct


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
