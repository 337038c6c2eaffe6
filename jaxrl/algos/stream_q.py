"""Stream Q(lambda) (Elsayed, Vasan and Mahmood 2024, arXiv 2410.14606): Watkins's Q(lambda) learning
from each transition once, as it arrives (batch size 1, no replay), with the ObGD step-size bound
(jaxrl.streaming); epsilon-greedy, discrete actions.

Per env step: delta = r + gamma * max_a' Q(s', a') - Q(s, a) (no bootstrap after termination; truncations
bootstrap); the trace adds grad Q(s, a) and the network moves along delta * trace by ObGD (kappa 2). The trace
resets at episode ends and, as in Watkins's Q(lambda), after a non-greedy action (an exploratory action that
differs from the greedy one). Rewards are scaled by the running std of the discounted return, observations
standardised by running statistics.

The defaults are the reference's CartPole script (github.com/mohmdelsayed/streaming-drl, stream_q.py: argparse
defaults lr 1, gamma 0.99, lamda 0.8, kappa_value 2, epsilon 1 -> 0.01 linearly over the first 5% of the run
(exploration_fraction 0.05); StreamQ's hidden_size 32; sparsity 0.9 in initialize_weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxrl import envs, streaming
from jaxrl.algos.base import Algorithm, Program, make_env
from jaxrl.config import ConfigError, dynamic, static
from jaxrl.distributions import EpsilonGreedyHyperparameters, epsilon, epsilon_greedy


@dataclass(frozen=True)
class Config(streaming.StreamConfig, EpsilonGreedyHyperparameters):
    env: str = static("gymnax:CartPole-v1", "environment id (see `jaxrl envs`); discrete actions")
    kappa: float = dynamic(2.0, "ObGD bound: the step size is at most 1 / (kappa * max(|delta|, 1) * "
                                "||trace||_1)", low=0.0, low_open=True)
    eps_end: float = dynamic(0.01, "exploration epsilon after the decay", low=0.0, high=1.0)
    eps_decay: float = dynamic(0.05, "fraction of the run over which epsilon goes linearly from eps_start to eps_end "
                                     "(0: eps_end from the start)", low=0.0, high=1.0)


def make_network(config: Config, env: envs.Environment, env_params) -> streaming.StreamNetwork:
    streaming.check_single_agent(config, env, "stream_q")
    space = env.action_space(env_params)
    if not isinstance(space, envs.Discrete):
        raise ConfigError(f"stream_q needs discrete actions; {config.env} has a continuous action space "
                          f"(use stream_ac)")
    return streaming.StreamNetwork(config.hidden_sizes, space.n, len(env.observation_space(env_params).shape),
                                   config.sparsity)


def make_program(config: Config) -> Program:
    base_env = make_env(config)
    network = make_network(config, base_env, base_env.default_params)

    def act(learner, key, obs, hp, progress):
        q = network.apply(learner.params["q"], obs)
        action = epsilon_greedy(key, q, epsilon(hp, progress))
        return action, {"non_greedy": action != jnp.argmax(q, -1)}

    def learn(learner: streaming.Learner, step: streaming.Step, hp):
        q_taken = lambda p: network.apply(p, step.obs)[step.action]  # noqa: E731
        q, grad = jax.value_and_grad(q_taken)(learner.params["q"])
        best_next = network.apply(learner.params["q"], step.next_obs).max()
        delta = step.reward + hp["gamma"] * (1.0 - step.terminated) * best_next - q
        params, trace, step_size = streaming.obgd_step(
            learner.params["q"], learner.trace["q"], grad, delta, hp["lr"], hp["gamma"] * hp["td_lambda"],
            hp["kappa"], step.done | step.extras["non_greedy"])
        return streaming.Learner({"q": params}, {"q": trace}), {
            "td_abs": jnp.abs(delta), "q_taken": q, "step_size": step_size,
            "non_greedy": step.extras["non_greedy"].astype(jnp.float32)}

    return streaming.make_program(config, base_env, {"q": network}, act, learn)


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action`: the greedy action, or when `stochastic` epsilon-greedy at
    eps_end with `key`; obs [*obs_shape] or batched."""
    network = make_network(config, env, env_params)

    def act(pstate, obs, key=None):
        q = network.apply(pstate["params"]["q"], streaming.policy_input(pstate, obs))
        return epsilon_greedy(key, q, config.eps_end) if stochastic else jnp.argmax(q, -1)

    return act


ALGORITHM = Algorithm("stream_q", "Stream Q(lambda): streaming Watkins Q(lambda), batch size 1, ObGD with "
                                  "eligibility traces; discrete actions",
                      Config, make_program, streaming.policy_state, make_policy)
make_train = ALGORITHM.make_train
