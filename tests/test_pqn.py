"""PQN: Q(lambda) targets against a NumPy reference, the shared rollout minibatches, config checks,
probe environments, the drivers (eval, PBT) with no PQN-specific code, and purejaxql's CartPole config (slow)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, envs, pbt, records
from jaxrl.algos import pqn
from jaxrl.config import ConfigError
from jaxrl.distributions import epsilon
from jaxrl.losses import lambda_returns
from jaxrl.rollout import rollout_minibatches

PROBE = dict(num_envs=8, num_steps=16, num_minibatches=2, hidden_sizes=[32, 32], lr=3e-3)


def q_lambda_reference(rewards, next_values, terminated, truncated, gamma, lam):
    """Plain loop over time, per env: Peng's Q(lambda) with next_values = max_a Q(next obs); episodes end at
    terminated (no bootstrap) or truncated (bootstrap from the final observation), and so does the rollout."""
    T, N = rewards.shape
    returns = np.zeros((T, N))
    for n in range(N):
        for t in reversed(range(T)):
            if terminated[t, n]:
                returns[t, n] = rewards[t, n]
            elif truncated[t, n] or t == T - 1:
                returns[t, n] = rewards[t, n] + gamma * next_values[t, n]
            else:
                mixed = (1 - lam) * next_values[t, n] + lam * returns[t + 1, n]
                returns[t, n] = rewards[t, n] + gamma * mixed
    return returns


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_q_lambda_returns_match_numpy_reference_with_terminations_and_truncations(gamma, lam, random_episodes):
    rewards, _, next_values, terminated, truncated = random_episodes.values()
    returns = lambda_returns(jnp.asarray(rewards), jnp.asarray(next_values), jnp.asarray(terminated),
                             jnp.asarray(terminated | truncated), gamma, lam)
    ref = q_lambda_reference(rewards, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(returns, ref, rtol=1e-5, atol=1e-5)


def test_rollout_minibatches_hold_every_sample_once_and_every_env_group_equally():
    T, N, M = 8, 6, 4  # 4 minibatches: 4 time splits of 2 steps, one env group
    steps, env_ids = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    batch = {"step": jnp.asarray(steps), "env": jnp.asarray(env_ids)}
    out = jax.tree.map(np.asarray, rollout_minibatches(jax.random.PRNGKey(0), batch, M))
    assert out["step"].shape == (M, T * N // M)
    assert sorted(zip(out["step"].ravel(), out["env"].ravel())) == sorted(zip(steps.ravel(), env_ids.ravel()))
    for env_counts in (np.bincount(mb, minlength=N) for mb in out["env"]):
        np.testing.assert_array_equal(env_counts, T // M)  # each minibatch: 2 steps of every env
    again = rollout_minibatches(jax.random.PRNGKey(1), batch, M)["step"]
    assert not np.array_equal(again, out["step"])  # a new key, a new order


@pytest.mark.parametrize("overrides, message", [
    (dict(num_envs=4, num_steps=6, num_minibatches=5), r"num_envs\*num_steps=4\*6=24 is not divisible by "
                                                       r"num_minibatches=5"),
    (dict(total_timesteps=100), r"total_timesteps=100 is smaller than one update"),
    (dict(eps_end=1.5), r"eps_end=1.5: must be <= 1"),
    (dict(value_head="hl_gauss", value_min=1.0, value_max=1.0), r"value_min=1.0 must be below value_max=1.0"),
])
def test_bad_configs_are_refused_before_compiling(overrides, message):
    with pytest.raises(ConfigError, match=message):
        pqn.Config(**overrides)


def test_continuous_actions_are_refused():
    with pytest.raises(ConfigError, match="pqn needs discrete actions; jaxrl:probe-continuous has a continuous"):
        pqn.make_program(pqn.Config(env="jaxrl:probe-continuous"))


def test_presets_are_purejaxqls_configs_and_minatar_layer_norms_its_convolution():
    cartpole = api.resolve_config("pqn", overrides={"env": "gymnax:CartPole-v1"})
    assert (cartpole.reward_scale, cartpole.num_minibatches, cartpole.hidden_sizes) == (0.1, 16, (256, 256))
    breakout = api.resolve_config("pqn", overrides={"env": "gymnax:Breakout-MinAtar", "td_lambda": 0.5})
    assert (breakout.conv_channels, breakout.hidden_sizes, breakout.num_envs, breakout.td_lambda) == ((16,), (128,),
                                                                                                        128, 0.5)
    env = envs.make(breakout.env)
    network = pqn.make_network(breakout, env, env.default_params)
    obs = jnp.zeros((1,) + env.observation_space(env.default_params).shape)
    layers = jax.tree_util.tree_flatten_with_path(jax.eval_shape(network.init, jax.random.PRNGKey(0), obs))[0]
    norms = {str(path[-2].key) for path, _ in layers if "LayerNorm" in str(path)}
    assert norms == {"LayerNorm_0", "LayerNorm_1"}  # after the convolution and after the hidden layer


def test_epsilon_decays_linearly_then_stays():
    hp = {"eps_start": 1.0, "eps_end": 0.2, "eps_decay": 0.5}
    np.testing.assert_allclose([epsilon(hp, p) for p in (0.0, 0.25, 0.5, 0.9)], [1.0, 0.6, 0.2, 0.2], rtol=1e-6)
    assert epsilon(dict(hp, eps_decay=0.0), 0.0) == pytest.approx(0.2)  # no decay: eps_end from the start


@pytest.fixture(scope="module")
def time_limit_run(tmp_path_factory):
    """Reward 1 forever, cut after 10 steps, constant observation, uniformly random behaviour; recorded as
    `jaxrl train` records it."""
    config = api.resolve_config("pqn", overrides=dict(env="jaxrl:probe-timelimit", gamma=0.9, reward_scale=0.1,
                                                      eps_start=1.0, eps_end=1.0, anneal_lr=False,
                                                      total_timesteps=96 * 128, **PROBE))
    return config, api.train(config, out=str(tmp_path_factory.mktemp("pqn") / "run"), progress=False, eval_episodes=0)


@pytest.mark.timeout(120)
def test_q_values_bootstrap_through_time_limits_off_policy(time_limit_run):
    # With targets bootstrapped from the final observation at truncations, Q = 0.1 * 1/(1-gamma) = 1 for both
    # actions (treating the time limit as terminal gives about 0.4).
    config, result = time_limit_run
    env = envs.make(config.env)
    network = pqn.make_network(config, env, env.default_params)
    q = network.apply(jax.tree.map(lambda x: x[0], result.state.params), jnp.zeros((1, 1)))[0, :, 0]
    np.testing.assert_allclose(q, [1.0, 1.0], rtol=0.05)


@pytest.mark.timeout(120)
def test_eval_restores_a_pqn_run(time_limit_run):
    result = api.evaluate(time_limit_run[1].run_dir, episodes=3)  # what `jaxrl eval RUN` runs
    assert result["return_per_seed"] == [10.0] and result["checkpoint"] == 96 and result["all_finished"]


@pytest.mark.timeout(180)
def test_pbt_on_pqn_with_a_categorical_head_learns_the_rewarded_action():
    # The generic PBT driver explores PQN's dynamic fields; every member learns the action matching the
    # observation's sign (reward 1 per one-step episode; 0.9 expected under epsilon 0.2).
    spec = {"algo": "pqn", "env": "jaxrl:probe-action", "seeds": 1,
            "base": {"total_timesteps": 64 * 128, "value_head": "hl_gauss", "value_min": -1.0, "value_max": 2.0,
                     "value_bins": 31, **{k: v for k, v in PROBE.items() if k != "lr"}},
            "space": {"lr": {"dist": "log_uniform", "low": 1e-3, "high": 1e-2},
                      "td_lambda": {"dist": "uniform", "low": 0.5, "high": 0.95}},
            "pbt": {"population": 4, "ready": 16, "fraction": 0.25}}
    result = pbt.run_pbt(spec, record=False, progress=False)
    assert [int(r["update"]) for r in result.schedule[::4]] == [0, 16, 32, 48]
    assert sum(int(r["parent"]) != int(r["member"]) for r in result.schedule) == 3  # one member per exploit step
    assert len({r["lr"] for r in result.schedule}) > 4  # perturbed copies
    assert min(records.final_returns(result.metrics)) >= 0.8, records.final_returns(result.metrics)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pqn_solves_cartpole_at_purejaxqls_config():
    # purejaxql/config/alg/pqn_cartpole.yaml (the gymnax:CartPole-v1 preset), 4 seeds, greedy evaluation.
    config = api.resolve_config("pqn", overrides=dict(env="gymnax:CartPole-v1", num_seeds=4))
    result = api.train(config, record=False, progress=False, eval_episodes=20)
    per_seed = result.summary["eval"]["return_per_seed"]
    assert np.median(per_seed) >= 475 and min(per_seed) >= 450, per_seed
