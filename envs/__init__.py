"""jaxrl's environment layer: one functional contract for every source.

    env = jaxrl.envs.make("gymnax:CartPole-v1")
    params = env.default_params
    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
"""

from jaxrl.envs.core import Environment, Wrapper
from jaxrl.envs.family import Family, ParamFamily, parse_family
from jaxrl.envs.registry import UnknownEnvError, list_ids, make, register
from jaxrl.envs.spaces import Box, Discrete, flat_dim
from jaxrl.envs.wrappers import (
    AgentView,
    AutoReset,
    ClipAction,
    EpisodeStatistics,
    NormalizeObservation,
    Vectorize,
    make_vec_env,
)

__all__ = [
    "Environment", "Wrapper", "make", "register", "list_ids", "UnknownEnvError",
    "Box", "Discrete", "flat_dim", "AgentView", "AutoReset", "ClipAction", "EpisodeStatistics",
    "NormalizeObservation", "Vectorize", "make_vec_env", "Family", "ParamFamily", "parse_family",
]
