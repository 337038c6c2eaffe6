"""Deterministic evaluation of a trained policy, outside the training program."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from jaxrl.envs import AgentView, ClipAction, EpisodeStatistics, Vectorize
from jaxrl.rollout import reset_memory


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
