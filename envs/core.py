"""The one environment contract every source is adapted to.

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`terminated` means the MDP reached a terminal state (no bootstrapping);
`truncated` means the episode was cut by a time limit (bootstrap from the
final observation). Multi-agent environments stack agents on a leading axis:
obs [num_agents, *obs_shape], action [num_agents, ...], reward [num_agents].
"""

from __future__ import annotations

from typing import Any

import jax

from jaxrl.envs.spaces import Space


class Environment:
    """Base class; subclasses implement reset/step and the spaces."""

    #: None for single-agent environments, else the number of stacked agents.
    num_agents: int | None = None
    #: The id the registry built this environment from.
    env_id: str = ""

    @property
    def default_params(self) -> Any:
        return None

    def reset(self, key: jax.Array, params: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        raise NotImplementedError

    def observation_space(self, params: Any) -> Space:
        raise NotImplementedError

    def action_space(self, params: Any) -> Space:
        raise NotImplementedError

    @property
    def unwrapped(self) -> "Environment":
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env_id!r})"


class Wrapper(Environment):
    """Delegates everything to the wrapped environment."""

    def __init__(self, env: Environment):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    @property
    def num_agents(self):  # type: ignore[override]
        return self.env.num_agents

    @property
    def env_id(self):  # type: ignore[override]
        return self.env.env_id

    @property
    def default_params(self):
        return self.env.default_params

    def reset(self, key, params):
        return self.env.reset(key, params)

    def step(self, key, state, action, params):
        return self.env.step(key, state, action, params)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def action_space(self, params):
        return self.env.action_space(params)

    @property
    def unwrapped(self) -> Environment:
        return self.env.unwrapped

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.env!r})"
