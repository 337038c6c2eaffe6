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

# CPU, 64 envs vmapped (compile s / steps/s): inverted_pendulum mjx 5.1/65k, generalized 4.7/73k, positional 13.1/59k, spring 9.6/141k; ant see DEFAULT_BACKEND note.
DEFAULT_BACKEND = "generalized"


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


def ids() -> list[str]:
    from brax import envs

    return list(envs._envs)  # read now, so register_environment additions show


def make(name: str, episode_length: int = 1000, action_repeat: int = 1, backend: str = DEFAULT_BACKEND, **kwargs) -> Environment:
    from brax import envs

    try:
        env = envs.get_environment(name, backend=backend, **kwargs)
    except TypeError:
        raise  # the registry reports bad keyword arguments
    except Exception as err:
        raise JaxrlError(f"brax:{name} failed to construct: {type(err).__name__}: {err}") from err
    return BraxEnv(env, f"brax:{name}", episode_length, action_repeat)
