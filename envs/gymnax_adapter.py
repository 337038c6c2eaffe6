"""Adapter for gymnax environments (ids `gymnax:<name>`)."""

from __future__ import annotations

import sys

import jax.numpy as jnp

from jaxrl.envs.core import Environment
from jaxrl.envs.deferred import defer_import
from jaxrl.envs.spaces import Box, Discrete


def convert_space(space):
    """gymnax space -> jaxrl space (Discrete or Box)."""
    kind = type(space).__name__
    if kind == "Discrete":
        return Discrete(int(space.n))
    if kind == "Box":
        return Box.make(space.low, space.high, space.shape, space.dtype)
    raise TypeError(f"unsupported gymnax space {kind}")


class GymnaxEnv(Environment):
    """Wraps a gymnax env without its built-in auto-reset (AutoReset does that)."""

    def __init__(self, env, params, env_id: str):
        self._env = env
        self._params = params
        self.env_id = env_id

    @property
    def default_params(self):
        return self._params

    def reset(self, key, params):
        return self._env.reset_env(key, params)

    def step(self, key, state, action, params):
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params)
        truncated = self._env.is_truncated(state, params)
        terminated = jnp.asarray(terminated, bool)
        # gymnax flags a time-limit step as terminal in some envs; a step that
        # hits the limit without a true terminal condition is only truncated.
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, jnp.logical_and(truncated, ~terminated), info

    def observation_space(self, params):
        return convert_space(self._env.observation_space(params))

    def action_space(self, params):
        return convert_space(self._env.action_space(params))


# The ids listed without importing gymnax, and those that fail here (tests check both against gymnax).
PACKAGE = "gymnax"
IDS = (
    "CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0",
    "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar", "Seaquest-MinAtar", "SpaceInvaders-MinAtar",
    "Catch-bsuite", "DeepSea-bsuite", "MemoryChain-bsuite", "UmbrellaChain-bsuite", "DiscountingChain-bsuite",
    "SimpleBandit-bsuite", "FourRooms-misc", "MetaMaze-misc", "PointRobot-misc", "BernoulliBandit-misc",
    "GaussianBandit-misc", "Reacher-misc", "Swimmer-misc", "Pong-misc", "FrozenLake-misc",
)
UNAVAILABLE = {"MNISTBandit-bsuite": "downloads the MNIST data set when constructed (needs network access)"}


# gymnax imports the plotting libraries of its renderers with itself (seaborn, and with it scipy; pyplot):
# about two seconds of every run, which never renders. They load on first use instead.
RENDERING_MODULES = ("seaborn", "matplotlib.pyplot")


def _gymnax():
    if "gymnax" not in sys.modules:
        for name in RENDERING_MODULES:
            defer_import(name)
    import gymnax

    return gymnax


def ids() -> list[str]:
    return list(_gymnax().registered_envs)


def make(name: str, **kwargs) -> Environment:
    env, params = _gymnax().make(name, **kwargs)
    return GymnaxEnv(env, params, f"gymnax:{name}")
