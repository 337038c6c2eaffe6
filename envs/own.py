"""The project's own JAX environments (ids `jaxrl:<name>`).

Probe environments have a known-correct value or policy, so a learner's bug
shows in seconds (see tests/test_learning.py):
- `probe-constant`: one step, reward 1, terminal. V = 1.
- `probe-timelimit`: reward 1 forever, cut by a time limit after `max_steps`,
  observation constant. With correct truncation bootstrapping V = 1/(1-gamma).
- `probe-action`: one step, observation ±1, reward 1 when action == (obs > 0).
- `probe-continuous`: one step, observation x in [-1, 1], reward -(a - x)^2.

Two-player zero-sum games (`tictactoe`, `connect4`, `sumo`) live in `games`; memory tasks
(`repeat-first`, `count-recall`) in `memory`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import Environment
from jaxrl.envs.games import ConnectFour, Sumo, TicTacToe
from jaxrl.envs.memory import CountRecall, RepeatFirst
from jaxrl.envs.spaces import Box, Discrete


@struct.dataclass
class ProbeParams:
    max_steps: int = 10


@struct.dataclass
class ProbeState:
    obs: jax.Array
    time: jax.Array


class _Probe(Environment):
    """One-step probes by default; subclasses set the reward and observation."""

    discrete = True

    def __init__(self, name: str):
        self.env_id = f"jaxrl:{name}"

    @property
    def default_params(self):
        return ProbeParams()

    def observe(self, key):
        return jnp.zeros((1,))

    def reward(self, obs, action):
        return jnp.float32(1.0)

    def reset(self, key, params):
        obs = self.observe(key)
        return obs, ProbeState(obs, jnp.int32(0))

    def step(self, key, state, action, params):
        reward = self.reward(state.obs, action)
        obs = self.observe(key)
        return obs, ProbeState(obs, state.time + 1), reward, jnp.bool_(True), jnp.bool_(False), {}

    def observation_space(self, params):
        return Box.make(-1.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(2) if self.discrete else Box.make(-1.0, 1.0, (1,))


class ProbeConstant(_Probe):
    pass


class ProbeTimeLimit(_Probe):
    def step(self, key, state, action, params):
        time = state.time + 1
        return state.obs, ProbeState(state.obs, time), jnp.float32(1.0), jnp.bool_(False), time >= params.max_steps, {}


class ProbeAction(_Probe):
    def observe(self, key):
        return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)[None]

    def reward(self, obs, action):
        return jnp.where(action == (obs[0] > 0).astype(jnp.int32), 1.0, 0.0)


class ProbeContinuous(_Probe):
    discrete = False

    def observe(self, key):
        return jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0)

    def reward(self, obs, action):
        return -jnp.sum((action - obs) ** 2)


_ENVS = {
    "probe-constant": ProbeConstant,
    "probe-timelimit": ProbeTimeLimit,
    "probe-action": ProbeAction,
    "probe-continuous": ProbeContinuous,
    "tictactoe": TicTacToe,
    "connect4": ConnectFour,
    "sumo": Sumo,
    "repeat-first": RepeatFirst,
    "count-recall": CountRecall,
}


PACKAGE = __name__  # always loaded with this module: ids() is read directly
IDS = tuple(_ENVS)
UNAVAILABLE: dict[str, str] = {}


def ids() -> list[str]:
    return list(_ENVS)


def make(name: str, **kwargs) -> Environment:
    return _ENVS[name](name, **kwargs)
