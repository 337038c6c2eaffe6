"""Composable wrappers over the environment contract in `core`.

Typical training stack (see `make_vec_env`):
    NormalizeObservation(Vectorize(EpisodeStatistics(AutoReset(ClipAction(env)))))
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import Environment, Wrapper
from jaxrl.envs.spaces import Box
from jaxrl.normalize import RunningStats, init_stats, normalize, update_stats


class AutoReset(Wrapper):
    """Resets finished episodes inside `step`.

    The returned observation is the first one of the next episode; the true
    last observation of the finished episode is `info["final_obs"]` (equal to
    the returned observation when the episode goes on), so bootstrapping at a
    time limit can use V(final_obs). `terminated` and `truncated` stay apart.
    """

    def step(self, key, state, action, params):
        step_key, reset_key = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = self.env.step(step_key, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        if self.num_agents is not None:
            done = jnp.all(done)  # the episode ends for every agent at once
        reset_obs, reset_state = self.env.reset(reset_key, params)
        pick = lambda new, old: jax.lax.select(jnp.broadcast_to(done, old.shape), new, old)
        next_state = jax.tree.map(pick, reset_state, state)
        next_obs = jax.tree.map(pick, reset_obs, obs)
        info = {**info, "final_obs": obs}
        return next_obs, next_state, reward, terminated, truncated, info


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStatistics(Wrapper):
    """Tracks undiscounted return and length of the running episode.

    At the step an episode ends, `info["episode_done"]` is True and
    `info["episode_return"]` / `info["episode_length"]` hold its totals.
    Multi-agent returns are kept per agent ([num_agents]).
    """

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        returns = jnp.zeros(() if self.num_agents is None else (self.num_agents,))
        return obs, EpisodeStatsState(state, returns, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(key, state.env_state, action, params)
        done = jnp.logical_or(terminated, truncated)
        if self.num_agents is not None:
            done = jnp.all(done)
        ep_return = state.episode_return + reward
        ep_length = state.episode_length + 1
        info = {**info, "episode_done": done, "episode_return": ep_return, "episode_length": ep_length}
        keep = 1 - done
        new_state = EpisodeStatsState(env_state, ep_return * keep, ep_length * keep)
        return obs, new_state, reward, terminated, truncated, info


class AgentView(Wrapper):
    """Multi-agent observations as one pytree, so rollouts, auto-reset and bootstrapping carry
    everything a shared policy needs about the state the observation came from:

        {"obs": [A, *obs_shape], "action_mask": [A, n] bool (discrete actions),
         "active": [A] bool (whose actions the env uses now), "world_state": [*ws_shape] (optional)}

    Environments may define `action_mask(state)`, `active(state)` and `world_state(state)`;
    without them every action is legal, every agent acts, and the world state is the
    concatenation of the agents' observations.
    """

    def __init__(self, env: Environment, world_state: bool = False):
        super().__init__(env)
        self.with_world_state = world_state

    def view(self, obs, state) -> dict:
        env, n = self.env, self.env.num_agents
        out = {"obs": obs}
        space = env.action_space(env.default_params)
        if not isinstance(space, Box):
            mask = getattr(env, "action_mask", None)
            out["action_mask"] = mask(state) if mask else jnp.ones((n, space.n), bool)
        active = getattr(env, "active", None)
        out["active"] = active(state) if active else jnp.ones((n,), bool)
        if self.with_world_state:
            ws = getattr(env, "world_state", lambda s: None)(state)
            out["world_state"] = obs.reshape(-1) if ws is None else ws.astype(jnp.float32)
        return out

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return self.view(obs, state), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        return self.view(obs, state), state, reward, terminated, truncated, info


class ClipAction(Wrapper):
    """Clips continuous actions into the action space's bounds before stepping."""

    def step(self, key, state, action, params):
        space = self.env.action_space(params)
        if isinstance(space, Box):
            action = jnp.clip(action, space.low, space.high)
        return self.env.step(key, state, action, params)


class Vectorize(Wrapper):
    """Runs `num_envs` copies in parallel with `vmap`; one key in, split inside."""

    def __init__(self, env: Environment, num_envs: int):
        super().__init__(env)
        self.num_envs = num_envs

    def reset(self, key, params):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.reset, in_axes=(0, None))(keys, params)

    def step(self, key, state, action, params):
        keys = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.step, in_axes=(0, 0, 0, None))(keys, state, action, params)

    def per_env_leaves(self, state):
        """Which leaves of the state have a leading env axis (all of them here): for data parallelism."""
        return jax.tree.map(lambda _: True, state)


@struct.dataclass
class NormalizedState:
    env_state: Any
    obs_stats: RunningStats


class NormalizeObservation(Wrapper):
    """Standardises observations with running statistics kept in the env state.

    Wrap a *vectorised* env: the statistics are shared by the whole batch.
    With `update_stats=False` (evaluation) the statistics stay frozen.
    """

    def __init__(self, env: Environment, update_stats: bool = True):
        super().__init__(env)
        self.update_stats = update_stats

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        stats = init_stats(self.env.observation_space(params).shape)
        if self.update_stats:
            stats = update_stats(stats, obs)
        return normalize(stats, obs), NormalizedState(state, stats)

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(key, state.env_state, action, params)
        stats = update_stats(state.obs_stats, obs) if self.update_stats else state.obs_stats
        info = {**info, "final_obs": normalize(stats, info["final_obs"])} if "final_obs" in info else info
        return normalize(stats, obs), NormalizedState(env_state, stats), reward, terminated, truncated, info

    def per_env_leaves(self, state):
        return NormalizedState(self.env.per_env_leaves(state.env_state),
                               jax.tree.map(lambda _: False, state.obs_stats))


def make_vec_env(env: Environment, num_envs: int, normalize_obs: bool = False, update_stats: bool = True,
                 world_state: bool = False) -> Environment:
    """The standard training stack: clip → (agent view) → auto-reset → episode stats → vmap → normalise.
    Multi-agent envs get `AgentView` observations (with the world state if `world_state`)."""
    if env.num_agents is not None:
        env = AgentView(env, world_state)
    vec = Vectorize(EpisodeStatistics(AutoReset(ClipAction(env))), num_envs)
    return NormalizeObservation(vec, update_stats) if normalize_obs else vec
