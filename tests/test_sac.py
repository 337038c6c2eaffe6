"""SAC and TD3: the tanh-Gaussian's log-probability, config checks before compiling, probes learned in seconds,
resume bitwise equal to the uninterrupted run, a sweep over lr and tau, and Pendulum thresholds (slow)."""

import re
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, checkpoint
from jaxrl.algos import sac, td3
from jaxrl.cache import enable_compilation_cache
from jaxrl.config import ConfigError, hparams
from jaxrl.distributions import gaussian_log_prob, tanh_gaussian_mode, tanh_gaussian_sample
from jaxrl.errors import Preempted
from jaxrl.preemption import PreemptionGuard
from jaxrl.sweep import run as sweep_run
from test_resume import assert_same_run

# jaxrl:probe-continuous: one step, observation x in [-1, 1], reward -(a - x)^2; the best return is 0.
PROBE = dict(env="jaxrl:probe-continuous", num_envs=8, buffer_size=1024, batch_size=64, learning_starts=64,
             hidden_sizes=[32, 32], lr=3e-3, total_timesteps=1600, updates_per_chunk=20)
SEEDS = 4  # the 4-point sweep below is the same program as a 4-seed run, so it loads the run's compilation


def config(algo="sac", **overrides):
    return api.resolve_config(algo, overrides={**PROBE, **overrides})


def test_tanh_gaussian_log_prob_is_the_change_of_variables_and_finite_at_extremes():
    key = jax.random.PRNGKey(0)
    mean = jnp.array([[0.3, -1.2, 2.0], [-0.5, 0.0, 1.5]])
    log_std = jnp.array([[-0.5, 0.2, -1.0], [0.1, -0.3, 0.4]])
    low, high = jnp.array([-2.0, 0.0, -1.0]), jnp.array([2.0, 1.0, 3.0])

    @jax.jit  # one compilation instead of one per operation
    def compute():
        action, log_prob = tanh_gaussian_sample(key, mean, log_std, low, high)
        # The same draw's pre-tanh value, and tanh's derivative there by autodiff, naively.
        pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        slope = jax.vmap(jax.vmap(jax.grad(jnp.tanh)))(pre_tanh)
        reference = gaussian_log_prob(mean, log_std, pre_tanh) - jnp.log(slope).sum(-1)
        expected_action = low + (jnp.tanh(pre_tanh) + 1) / 2 * (high - low)
        mode = tanh_gaussian_mode(mean, low, high), low + (jnp.tanh(mean) + 1) / 2 * (high - low)
        # Pre-activations of +-30 saturate tanh in float32 (1 - tanh^2 = 0): the naive form is infinite, ours not.
        _, extreme_log_prob = tanh_gaussian_sample(key, jnp.array([[30.0, -30.0]]), jnp.full((1, 2), -5.0))
        return action, log_prob, reference, expected_action, mode, extreme_log_prob

    action, log_prob, reference, expected_action, mode, extreme_log_prob = compute()
    np.testing.assert_allclose(log_prob, reference, rtol=1e-5)
    np.testing.assert_allclose(action, expected_action, rtol=1e-6)
    assert bool(jnp.all((action >= low) & (action <= high)))
    np.testing.assert_allclose(*mode, rtol=1e-6)
    assert bool(jnp.isfinite(extreme_log_prob).all()) and float(extreme_log_prob[0]) > 100  # mass piles at the bounds


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_discrete_actions_are_refused_naming_the_env(algo):
    module = {"sac": sac, "td3": td3}[algo]
    with pytest.raises(ConfigError, match=f"{algo} needs continuous actions; jaxrl:probe-action has a discrete "
                                          f"action space \\(2 actions\\): use dqn, pqn or ppo"):
        module.make_program(config(algo, env="jaxrl:probe-action"))


@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=2048), "batch_size=2048 is larger than buffer_size=1024"),
    (dict(buffer_size=1020), "buffer_size=1020 is not a multiple of num_envs=8"),
    (dict(learning_starts=1600), "learning_starts=1600 leaves no gradient step: the run collects 1600 env steps"),
    (dict(target_update="never"), "target_update='never': must be one of 'gradient_step', 'update'"),
])
def test_bad_configs_are_refused_naming_the_numbers(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**overrides)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    enable_compilation_cache()  # as the jaxrl command does: the resumed run of the same program loads it
    out = tmp_path_factory.mktemp("sac") / "full"
    result = api.train(config(num_seeds=SEEDS), out=str(out), progress=False, eval_episodes=50, checkpoint_every=200)
    return out, result


@pytest.mark.timeout(120)
def test_sac_learns_the_continuous_probe_in_seconds(uninterrupted):
    _, result = uninterrupted
    assert min(result.summary["eval"]["return_per_seed"]) >= -0.02, result.summary["eval"]


@pytest.mark.timeout(120)
def test_sac_resumed_mid_training_is_bitwise_the_uninterrupted_run(uninterrupted, tmp_path, monkeypatch):
    full, _ = uninterrupted
    stopped = tmp_path / "stopped"
    with monkeypatch.context() as m:  # a SIGTERM seen at the first chunk boundary (update 20 of 200)
        m.setattr(PreemptionGuard, "__enter__", lambda guard: setattr(guard, "signum", signal.SIGTERM) or guard)
        with pytest.raises(Preempted):
            api.train(config(num_seeds=SEEDS), out=str(stopped), progress=False, eval_episodes=0, checkpoint_every=200)
    assert checkpoint.steps(stopped / "checkpoints") == [20]
    api.resume(stopped, progress=False, eval_episodes=0)
    assert_same_run(full, stopped, updates=200)  # networks, temperature, optimisers, buffer, statistics, keys


@pytest.mark.timeout(120)
def test_td3_learns_the_continuous_probe_in_seconds():
    result = api.train(config("td3"), record=False, progress=False, eval_episodes=50)
    assert result.summary["eval"]["return_mean"] >= -0.02, result.summary["eval"]


@pytest.mark.timeout(120)
def test_td3_moves_its_actor_and_targets_every_policy_delay_critic_steps():
    cfg = config("td3", policy_delay=3, learning_starts=0, hidden_sizes=[8], total_timesteps=8 * 7)
    program = td3.make_program(cfg)  # one gradient step per update, from the first update on
    state = program.traced_init(jax.random.PRNGKey(0), hparams(cfg))
    moved = {name: [] for name in ("critic", "actor", "target_actor", "target_critic")}
    for _ in range(7):
        new, _ = program.traced_update(state)
        for name, history in moved.items():
            before, after = jax.tree.leaves(getattr(state.learner, name)), jax.tree.leaves(getattr(new.learner, name))
            history.append(not all(np.array_equal(a, b) for a, b in zip(before, after)))
        state = new
    assert moved["critic"] == [True] * 7
    delayed = [False, False, True, False, False, True, False]  # after critic steps 3 and 6
    assert moved["actor"] == moved["target_actor"] == moved["target_critic"] == delayed, moved


@pytest.mark.timeout(180)
def test_sweep_over_sac_lr_and_tau_runs_in_one_program_and_learns_at_every_point(tmp_path):
    spec = {"algo": "sac", "env": "jaxrl:probe-continuous", "method": "grid", "seeds": 1,
            "base": {k: v for k, v in PROBE.items() if k not in ("env", "lr")},
            "space": {"lr": [1e-3, 3e-3], "tau": [0.005, 0.05]}}
    result = sweep_run.run_sweep(spec, out=str(tmp_path / "sweep"), progress=False)
    assert result.summary["compilations"] == 1 and len(result.runs) == 4
    assert sorted((r["lr"], r["tau"]) for r in result.runs) == [(1e-3, 0.005), (1e-3, 0.05), (3e-3, 0.005),
                                                                (3e-3, 0.05)]
    assert all(float(r["final_return"]) >= -0.2 for r in result.runs), result.runs  # random play: about -0.67


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_pendulum_at_2e4_steps_every_seed_swings_up(algo):
    # The default config (Rejax's Pendulum settings), 4 seeds in one program, greedy evaluation.
    c = api.resolve_config(algo, overrides={"num_seeds": 4})
    assert c.env == "gymnax:Pendulum-v1" and c.total_timesteps == 20_000
    result = api.train(c, record=False, progress=False, eval_episodes=20)
    returns = result.summary["eval"]["return_per_seed"]
    assert np.median(returns) >= -250 and min(returns) >= -400, returns
