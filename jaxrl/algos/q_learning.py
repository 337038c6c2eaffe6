"""What the Q-learning algorithms on a Q-network (DQN, PQN) share: the env checks that size the network, the
learner's start, the Q-values read through the config's value head, and the epsilon-greedy policies built on them."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxrl import envs
from jaxrl.config import ConfigError
from jaxrl.distributions import epsilon_greedy
from jaxrl.networks import check_conv
from jaxrl.optim import make_optimizer


def network_shape(algo: str, config, env: envs.Environment, env_params) -> tuple[int, int, tuple]:
    """(actions, observation dimensions, the conv torso's image shape or ()) of the single-agent, discrete-action
    env a Q-network of `algo` learns on; ConfigError for any other env."""
    if env.num_agents is not None:
        raise ConfigError(f"{algo} is a single-agent algorithm; {config.env} has {env.num_agents} agents")
    act_space = env.action_space(env_params)
    if not isinstance(act_space, envs.Discrete):
        raise ConfigError(f"{algo} needs discrete actions; {config.env} has a continuous action space")
    obs_shape = env.observation_space(env_params).shape
    return act_space.n, len(obs_shape), check_conv(config.conv_channels, config.conv_kernel, obs_shape, config.env)


def start(network, env: envs.Environment, env_params, key, max_grad_norm):
    """A Q-learner's first `(key, obs, env_state, params, opt_state)`: the vectorised envs reset, the Q-network and
    its optimiser state initialised."""
    key, net_key, env_key = jax.random.split(key, 3)
    obs, env_state = env.reset(env_key, env_params)
    params = network.init(net_key, obs)
    return key, obs, env_state, params, make_optimizer(0.0, max_grad_norm).init(params)


def q_values_of(network, head) -> Callable:
    """`q_values(params, obs)`: [..., *obs_shape] -> [..., action_dim], the value head's reading of the outputs."""
    return lambda params, obs: head.value(network.apply(params, obs))


def exploring_policy(q_values: Callable, params, eps):
    """The rollout policy `(key, obs) -> (action, extras)`: epsilon-greedy on `q_values(params, obs)`."""
    return lambda key, obs: (epsilon_greedy(key, q_values(params, obs), eps), {})


def make_act(q_values: Callable, eps_end, stochastic: bool) -> Callable:
    """`act(policy_state, obs, key=None) -> action`: the greedy action, or when `stochastic` epsilon-greedy at
    `eps_end` with `key`; obs [*obs_shape] or batched."""

    def act(pstate, obs, key=None):
        q = q_values(pstate["params"], obs)
        return epsilon_greedy(key, q, eps_end) if stochastic else jnp.argmax(q, -1)

    return act
