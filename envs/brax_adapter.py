"""Adapter for brax environments (ids `brax:<name>`).

brax's own wrappers are not used: the time limit lives here (the state counts
steps) and AutoReset does the resetting, so terminated (brax's `done`) and
truncated (the time limit) stay apart.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import Environment
from jaxrl.envs.spaces import Box
from jaxrl.errors import JaxrlError

# 2-core CPU, 64 envs vmapped, compile s / steps/s: inverted_pendulum mjx 6.0/64k generalized 7.6/75k positional 7.5/93k spring 7.3/185k; ant mjx 10.6/17k generalized 16.2/6.0k positional 20.8/4.6k spring 10.0/18k
# spring runs pendulum 3x faster but PPO (defaults, 1e6 steps, 3 seeds) reaches 719 there vs 993 on mjx (generalized 519)
DEFAULT_BACKEND = "mjx"


@struct.dataclass
class BraxState:
    inner: Any  # brax.envs.State
    steps: jax.Array


class BraxEnv(Environment):
    """A brax env with its episode cut after `episode_length` physics steps.

    Like brax's EpisodeWrapper, `action_repeat` steps the physics that many
    times per call (rewards summed) and counts each repeat toward the limit.
    """

    def __init__(self, env, env_id: str, episode_length: int = 1000, action_repeat: int = 1):
        self._env = env
        self.env_id = env_id
        self.episode_length = episode_length
        self.action_repeat = action_repeat
        # eval_shape: brax's observation_size would run a whole reset eagerly
        obs = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs
        if not hasattr(obs, "shape") or len(obs.shape) != 1:
            raise JaxrlError(f"{env_id}: only flat array observations are supported, got {obs}")
        self._obs_size = obs.shape[0]
        self._act_size = int(env.action_size)

    def reset(self, key, params):
        inner = self._env.reset(key)
        return inner.obs, BraxState(inner, jnp.int32(0))

    def step(self, key, state, action, params):
        def physics(inner, _):
            inner = self._env.step(inner, action)
            return inner, inner.reward

        inner, rewards = jax.lax.scan(physics, state.inner, None, self.action_repeat)
        steps = state.steps + self.action_repeat
        terminated = inner.done > 0
        truncated = jnp.logical_and(steps >= self.episode_length, ~terminated)
        reward = jnp.sum(rewards).astype(jnp.float32)
        return inner.obs, BraxState(inner, steps), reward, terminated, truncated, {}

    def observation_space(self, params):
        return Box.make(-jnp.inf, jnp.inf, (self._obs_size,))

    def action_space(self, params):
        return Box.make(-1.0, 1.0, (self._act_size,))


# The ids listed without importing brax, and those that fail here (tests check both against brax).
PACKAGE = "brax.envs"
IDS = ("ant", "fast", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_pendulum",
       "inverted_double_pendulum", "pusher", "reacher", "walker2d")
# Broken in brax itself, whatever is installed: refused by `make` with the reason.
UNAVAILABLE = {"swimmer": "brax 0.14's fluid model calls jnp.clip(a_min=...), which jax 0.10 removed, "
                          "so its step fails"}


def ids() -> list[str]:
    from brax import envs

    return list(envs._envs)  # read now, so register_environment additions show


def make(name: str, episode_length: int = 1000, action_repeat: int = 1, backend: str | None = None, **kwargs) -> Environment:
    """`backend` defaults to DEFAULT_BACKEND, or the env's own where it lacks that one (swimmer: generalized only)."""
    from brax import envs

    if name in UNAVAILABLE:
        raise JaxrlError(f"brax:{name} is unavailable here: {UNAVAILABLE[name]}")
    try:
        try:
            env = envs.get_environment(name, backend=backend or DEFAULT_BACKEND, **kwargs)
        except ValueError:
            if backend is not None:
                raise
            env = envs.get_environment(name, **kwargs)
    except TypeError:
        raise  # the registry reports bad keyword arguments
    except Exception as err:
        raise JaxrlError(f"brax:{name} failed to construct: {type(err).__name__}: {err}") from err
    return BraxEnv(env, f"brax:{name}", episode_length, action_repeat)
