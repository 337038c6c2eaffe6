"""Stream AC(lambda) (Elsayed, Vasan and Mahmood 2024, arXiv 2410.14606): an actor-critic that learns
from each transition once, as it arrives (batch size 1, no replay), with eligibility traces and the ObGD step-size
bound (jaxrl.streaming); discrete (categorical) or continuous (Gaussian) actions.

Per env step: delta = r + gamma * V(s') - V(s) (no bootstrap after termination; truncations bootstrap); the critic's
trace adds grad V(s), the actor's grad [log pi(a|s) + ent_coef * sign(delta) * H(pi(.|s))], and each network
moves along delta * trace by ObGD (kappa_value 2, kappa_policy 3); both traces reset at episode ends. Rewards
are scaled by the running std of the discounted return, observations standardised by running statistics.

The defaults are the reference's CartPole script (github.com/mohmdelsayed/streaming-drl, stream_ac_discrete.py:
argparse defaults lr 1, gamma 0.99, lamda 0.8, entropy_coeff 0.01, kappa_policy 3, kappa_value 2; StreamAC's
hidden_size 32; sparsity 0.9 in initialize_weights). Its continuous script (stream_ac_continuous.py) uses 128 hidden
units and a state-dependent std, softplus of a second head, as here.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from jaxrl import distributions, envs, streaming
from jaxrl.algos.base import Algorithm, Program, make_env
from jaxrl.config import dynamic, static


@dataclass(frozen=True)
class Config(streaming.StreamConfig):
    env: str = static("gymnax:CartPole-v1", "environment id (see `jaxrl envs`)")
    kappa_policy: float = dynamic(3.0, "ObGD bound of the actor: its step size is at most "
                                       "1 / (kappa * max(|delta|, 1) * ||trace||_1)", low=0.0, low_open=True)
    kappa_value: float = dynamic(2.0, "ObGD bound of the critic", low=0.0, low_open=True)
    ent_coef: float = dynamic(0.01, "entropy coefficient (the bonus enters the actor's trace times sign(delta))",
                              low=0.0)


def make_networks(config: Config, env: envs.Environment, env_params) -> tuple[dict, bool]:
    """({"actor", "critic"}, discrete): the actor gives logits, or a mean and a pre-softplus std per dimension."""
    streaming.check_single_agent(config, env, "stream_ac")
    space = env.action_space(env_params)
    discrete = isinstance(space, envs.Discrete)
    outputs = space.n if discrete else 2 * space.shape[0]
    net = lambda out: streaming.StreamNetwork(config.hidden_sizes, out,  # noqa: E731
                                              len(env.observation_space(env_params).shape), config.sparsity)
    return {"actor": net(outputs), "critic": net(1)}, discrete


def distribution(actor_out, discrete: bool):
    """Actor outputs -> logits, or (mean, log std) with std = softplus of the second half."""
    if discrete:
        return actor_out
    mean, pre_std = jnp.split(actor_out, 2, axis=-1)
    return mean, jnp.log(jax.nn.softplus(pre_std))


def make_program(config: Config) -> Program:
    base_env = make_env(config)
    networks, discrete = make_networks(config, base_env, base_env.default_params)
    actor, critic = networks["actor"], networks["critic"]

    def act(learner, key, obs, hp, progress):
        dist = distribution(actor.apply(learner.params["actor"], obs), discrete)
        action, _ = distributions.sample_log_prob(key, dist, discrete)
        return action, {}

    def learn(learner: streaming.Learner, step: streaming.Step, hp):
        value = lambda p, obs: critic.apply(p, obs)[0]  # noqa: E731
        params, trace = learner.params, learner.trace
        v, value_grad = jax.value_and_grad(value)(params["critic"], step.obs)
        target = step.reward + hp["gamma"] * (1.0 - step.terminated) * value(params["critic"], step.next_obs)
        delta = jax.lax.stop_gradient(target - v)

        def objective(p):
            dist = distribution(actor.apply(p, step.obs), discrete)
            entropy = distributions.entropy(dist, discrete)
            return distributions.log_prob(dist, step.action, discrete) + hp["ent_coef"] * jnp.sign(delta) * entropy, \
                entropy

        policy_grad, entropy = jax.grad(objective, has_aux=True)(params["actor"])
        decay = hp["gamma"] * hp["td_lambda"]
        new_critic, critic_trace, critic_step = streaming.obgd_step(
            params["critic"], trace["critic"], value_grad, delta, hp["lr"], decay, hp["kappa_value"], step.done)
        new_actor, actor_trace, actor_step = streaming.obgd_step(
            params["actor"], trace["actor"], policy_grad, delta, hp["lr"], decay, hp["kappa_policy"], step.done)
        learner = streaming.Learner({"actor": new_actor, "critic": new_critic},
                                    {"actor": actor_trace, "critic": critic_trace})
        return learner, {"td_abs": jnp.abs(delta), "value": v, "entropy": entropy, "critic_step_size": critic_step,
                         "actor_step_size": actor_step}

    return streaming.make_program(config, base_env, networks, act, learn)


def make_policy(config: Config, env: envs.Environment, env_params, stochastic: bool = False):
    """`act(policy_state, obs, key=None) -> action`: the mode of the policy, or a sample with `key` when
    `stochastic`; obs [*obs_shape] or batched."""
    networks, discrete = make_networks(config, env, env_params)

    def act(pstate, obs, key=None):
        out = networks["actor"].apply(pstate["params"]["actor"], streaming.policy_input(pstate, obs))
        dist = distribution(out, discrete)
        return distributions.sample_log_prob(key, dist, discrete)[0] if stochastic else distributions.mode(dist,
                                                                                                        discrete)

    return act


ALGORITHM = Algorithm("stream_ac", "Stream AC(lambda): streaming actor-critic, batch size 1, ObGD with eligibility "
                                   "traces; discrete or continuous actions",
                      Config, make_program, streaming.policy_state, make_policy)
make_train = ALGORITHM.make_train
