"""Streaming learners (stream_ac, stream_q): the ObGD bound, sparse initialisation, trace resets, probe values of
vmapped learners, per-update metrics aggregated per log_every, bitwise resume, bad input refused before
compiling, and the paper's CartPole results (slow)."""

import math
import re
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, envs, records, streaming
from jaxrl.algos import get, stream_q
from jaxrl.cache import enable_compilation_cache
from jaxrl.config import ConfigError, hparams
from jaxrl.errors import Preempted
from jaxrl.preemption import PreemptionGuard
from test_resume import assert_same_run

SMALL = dict(hidden_sizes=[16, 16])


def test_obgd_cuts_the_step_that_would_overshoot_to_its_bound():
    # A linear prediction v(w) = x.w with x of +-1: its gradient is x, so a step of size a along delta * trace moves
    # v by a * delta * ||x||_1. At lr 1 the plain step would move v by 50 for a TD error of 5 (overshooting it
    # tenfold); ObGD cuts it to 1 / (kappa * max(|delta|, 1) * ||trace||_1).
    x = jnp.asarray([1.0, -1.0] * 5)
    w = jnp.zeros(10)
    delta, kappa = 5.0, 2.0
    new_w, trace, step = streaming.obgd_step(w, jnp.zeros(10), x, delta, 1.0, 0.0, kappa, False)
    assert step == pytest.approx(1.0 / (kappa * delta * 10))
    moved = float(x @ (new_w - w))
    assert 0 < moved <= delta / kappa + 1e-6  # towards the target, by at most 1/kappa of the TD error
    np.testing.assert_array_equal(trace, x)
    # A small trace and TD error: the bound does not bind, the step is lr.
    _, _, step = streaming.obgd_step(w, jnp.zeros(10), 0.01 * x, 0.5, 0.3, 0.0, kappa, False)
    assert step == pytest.approx(0.3)


def test_obgd_effective_step_never_exceeds_the_bound_and_resets_the_trace():
    rng = np.random.default_rng(0)
    obgd_step = jax.jit(streaming.obgd_step)
    bound_bound = 0
    for _ in range(100):
        params = {"a": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.asarray(rng.normal(size=5))}
        grad = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 10 ** rng.uniform(-3, 1)), params)
        trace = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)
        delta, lr, kappa, decay = rng.normal() * 10 ** rng.uniform(-2, 2), 10 ** rng.uniform(-2, 0.5), \
            rng.uniform(1, 4), rng.uniform(0, 1)
        _, new_trace, step = obgd_step(params, trace, grad, delta, lr, decay, kappa, False)
        norm = sum(float(jnp.abs(z).sum()) for z in jax.tree.leaves(new_trace))
        effective = float(step) * kappa * max(abs(delta), 1.0) * norm
        assert float(step) <= lr * (1 + 1e-6) and effective <= 1 + 1e-5
        bound_bound += float(step) < lr * (1 - 1e-6)
        expected = jax.tree.map(lambda z, g: decay * z + g, trace, grad)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), new_trace, expected)
    assert 10 < bound_bound < 90  # both regimes were drawn
    _, reset, _ = streaming.obgd_step(params, trace, grad, 1.0, 1.0, 0.8, 2.0, True)
    assert all(not np.asarray(z).any() for z in jax.tree.leaves(reset))


def test_sparse_init_zeroes_the_stated_fraction_of_every_units_inputs_and_layer_norm_has_no_parameters():
    network = streaming.StreamNetwork((32, 32), 3)  # kernels [4, 32], [32, 32], [32, 3]
    params = jax.jit(network.init)(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
    assert sorted(params) == ["Dense_0", "Dense_1", "Dense_2"]  # no LayerNorm scale or bias
    for layer in params.values():
        assert not np.asarray(layer["bias"]).any()
        kernel = np.asarray(layer["kernel"])
        fan_in = kernel.shape[0]
        # The reference rounds up: ceil(0.9 * 32) = 29 of 32 inputs zeroed, and all 4 of 4.
        np.testing.assert_array_equal((kernel == 0).sum(0), math.ceil(0.9 * fan_in))
        assert np.abs(kernel).max() <= 1 / math.sqrt(fan_in)
    hidden = np.asarray(params["Dense_1"]["kernel"])
    assert len({tuple(np.flatnonzero(col == 0)) for col in hidden.T}) > 1  # each unit draws its own inputs


@pytest.mark.timeout(120)
def test_stream_q_learns_the_time_limit_probe_value_and_resets_its_trace():
    # Reward 1 forever, cut after 10 steps, constant observation, random actions: bootstrapping through the time
    # limit, Q = (1 / sigma) / (1 - gamma) for both actions, sigma the std by which the rewards are scaled. The trace
    # is zero after exactly the steps that ended an episode or took a non-greedy action. Two learners, vmapped.
    config = api.resolve_config("stream_q", overrides=dict(env="jaxrl:probe-timelimit", gamma=0.9, eps_start=1.0,
                                                           eps_end=1.0, total_timesteps=1500, **SMALL))
    program = stream_q.make_program(config)

    def step(state, _):
        state, metrics = program.update(state)
        trace_zero = jnp.all(jnp.stack([jnp.all(z == 0) for z in jax.tree.leaves(state.learner.trace)]))
        return state, (trace_zero, (metrics["episodes"] > 0) | (metrics["non_greedy"] > 0))

    def run(key, hp):
        return jax.lax.scan(step, program.init(key, hp), None, config.num_updates)

    hp = {k: jnp.full(2, v, jnp.float32) for k, v in hparams(config).items()}
    state, (trace_zero, resets) = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 2), hp)
    np.testing.assert_array_equal(trace_zero, resets)
    assert 0.3 < np.mean(resets) < 0.7
    env = envs.make(config.env)
    network = stream_q.make_network(config, env, env.default_params)
    q = np.asarray(jax.vmap(lambda p, o: network.apply(p["q"], o))(state.learner.params, state.obs))[:, 0]
    sigma = np.sqrt(np.asarray(jax.vmap(streaming.sample_variance)(state.return_stats)))
    np.testing.assert_allclose(q, np.broadcast_to((10 / sigma)[:, None], q.shape), rtol=0.02)


AC_RUN = dict(env="jaxrl:probe-action", total_timesteps=2000, updates_per_chunk=500, num_seeds=2, **SMALL)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    enable_compilation_cache()  # as the jaxrl command does: the resumed run of the same program loads it
    out = tmp_path_factory.mktemp("stream_ac") / "full"
    config = api.resolve_config("stream_ac", overrides=AC_RUN)
    return out, api.train(config, out=str(out), progress=False, eval_episodes=0, checkpoint_every=2000)


@pytest.mark.timeout(120)
def test_two_vmapped_actor_critics_learn_the_probe_with_metrics_aggregated_per_log_every(uninterrupted):
    _, result = uninterrupted
    metrics = {k: np.asarray(v) for k, v in result.metrics.items()}
    # One-step episodes: every update ends one, so each row sums log_every of them (4 for 2000 updates).
    assert metrics["episodes"].shape == (2, 500)
    np.testing.assert_array_equal(metrics["episodes"], 4)
    np.testing.assert_array_equal(metrics["episode_length_sum"], 4)
    # Learned: the sampled action is the rewarded one in each of the last 200 episodes of both learners.
    assert (metrics["episode_return_sum"] <= 4).all() and (metrics["episode_return_sum"][:, -50:] == 4).all()
    np.testing.assert_array_equal(records.last_episodes_returns(metrics), 1.0)
    # Other metrics are averaged: the entropy of two actions stays below log 2.
    assert (metrics["entropy"] <= np.log(2) + 1e-6).all() and (metrics["entropy"][:, 0] > 0.5).all()
    # Every step ends an episode, so both traces of both learners are zero after it.
    assert not any(np.asarray(z).any() for z in jax.tree.leaves(result.state.learner.trace))


@pytest.mark.timeout(120)
def test_stream_ac_resumed_mid_training_is_bitwise_the_uninterrupted_run(uninterrupted, tmp_path, monkeypatch):
    full, _ = uninterrupted
    stopped = tmp_path / "stopped"
    config = api.resolve_config("stream_ac", overrides=AC_RUN)
    with monkeypatch.context() as m:  # a SIGTERM seen at the first chunk boundary (update 500 of 2000)
        m.setattr(PreemptionGuard, "__enter__", lambda guard: setattr(guard, "signum", signal.SIGTERM) or guard)
        with pytest.raises(Preempted):
            api.train(config, out=str(stopped), progress=False, eval_episodes=0, checkpoint_every=2000)
    api.resume(stopped, progress=False, eval_episodes=0)
    assert_same_run(full, stopped, updates=2000)  # parameters, traces, statistics, env, keys, metrics


@pytest.mark.parametrize("algo, overrides, message", [
    ("stream_q", dict(env="jaxrl:probe-continuous"), "stream_q needs discrete actions; jaxrl:probe-continuous has a "
                                                      "continuous action space (use stream_ac)"),
    ("stream_ac", dict(num_envs=4), "num_envs=4: a streaming learner learns from one env (batch size 1); train "
                                    "independent learners together with num_seeds"),
    ("stream_q", dict(td_lambda=1.5), "td_lambda=1.5: must be <= 1"),
])
def test_bad_input_is_refused_in_one_line_before_compiling(algo, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        get(algo).make_program(api.resolve_config(algo, overrides=overrides))
    assert "\n" not in str(error.value)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("algo, steps, median, least", [("stream_ac", 100_000, 450, 400),
                                                        ("stream_q", 200_000, 400, 400)])
def test_cartpole_at_the_reference_config(algo, steps, median, least):
    # The paper's CartPole results (Elsayed et al. 2024): 8 vmapped learners at the reference defaults.
    config = api.resolve_config(algo, overrides=dict(env="gymnax:CartPole-v1", total_timesteps=steps, num_seeds=8))
    result = api.train(config, record=False, progress=False, eval_episodes=0)
    last = records.last_episodes_returns(result.metrics)
    assert np.median(last) >= median and last.min() >= least, last
