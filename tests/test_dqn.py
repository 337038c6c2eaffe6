"""DQN: config checks before compiling, a probe with a known Q-value, and the drivers (train, resume with a full
buffer, eval, sweep) working for it unchanged."""

import json
import re
import signal

import jax
import numpy as np
import pytest

from jaxrl import api, cli, envs, loop
from jaxrl.algos import dqn
from jaxrl.config import ConfigError
from jaxrl.errors import JaxrlError
from jaxrl.sweep import run as sweep_run
from test_resume import assert_same_run, complete_steps, jaxrl, start_and_stop

FAST = dict(num_envs=4, buffer_size=256, batch_size=32, learning_starts=64, target_update_interval=40,
            hidden_sizes=[32, 32], total_timesteps=4000)


def config(**overrides):
    return api.resolve_config("dqn", overrides={**FAST, **overrides})


@pytest.mark.parametrize("overrides, message", [
    (dict(batch_size=512), "batch_size=512 is larger than buffer_size=256"),
    (dict(buffer_size=258), "buffer_size=258 is not a multiple of num_envs=4"),
    (dict(learning_starts=4000), "learning_starts=4000 leaves no gradient step: the run collects 4000 env steps"),
    (dict(target_update_interval=42), "target_update_interval=42 env steps is not a multiple of one update's "
                                      "num_envs*num_steps=4"),
    (dict(buffer_size=4, num_steps=2, batch_size=4), "buffer_size=4 cannot hold one update's num_envs*num_steps=8"),
    (dict(value_head="hl_gauss", value_min=1.0, value_max=0.0), "value_min=1.0 must be below value_max=0.0"),
])
def test_bad_configs_are_refused_naming_the_numbers(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**overrides)


def test_continuous_actions_are_refused_before_compiling():
    with pytest.raises(ConfigError, match="dqn needs discrete actions; jaxrl:probe-continuous has a continuous"):
        dqn.make_program(config(env="jaxrl:probe-continuous"))


def test_a_buffer_too_large_for_the_device_is_refused_naming_buffer_size(monkeypatch):
    monkeypatch.setattr(loop, "device_memory", lambda: 10**8)
    monkeypatch.setattr(loop, "compile_program", lambda *a, **k: pytest.fail("compiled"))
    # CartPole: 42 bytes a transition (obs and next obs 4 floats each, action, reward, two flags).
    big = config(env="gymnax:CartPole-v1", buffer_size=4_000_000, total_timesteps=10**6)
    with pytest.raises(JaxrlError, match=r"needs about 0\.3 GB per device \(0\.3 GB for its state held twice, "
                                         r"largest parts buffer 0\.2 GB; .* but a device has 0\.1 GB: lower "
                                         r"buffer_size, num_envs"):
        api.train(big, record=False, progress=False)


@pytest.mark.timeout(120)
def test_q_values_bootstrap_through_time_limits_with_n_step_double_dueling_prioritized_hl_gauss():
    # Reward 1 forever, cut after 10 steps, constant observation: with truncations bootstrapped (also inside
    # 3-step windows), Q = 1/(1-gamma) = 10 for both actions (played at random, so both are learned). Two seeds:
    # the vmapped program with an HL-Gauss head (see losses.ERF_ARGUMENT_BOUND) must finish.
    c = config(env="jaxrl:probe-timelimit", gamma=0.9, n_step=3, double_q=True, dueling=True, prioritized=True,
               value_head="hl_gauss", value_min=0.0, value_max=20.0, lr=1e-2, gradient_steps=4, eps_end=1.0,
               num_seeds=2)
    result = api.train(c, record=False, progress=False, eval_episodes=0)
    env = envs.make(c.env)
    network, head = dqn.make_network(c, env, env.default_params)
    q = jax.vmap(lambda params: head.value(network.apply(params, np.zeros((1, 1), np.float32))))(result.state.params)
    np.testing.assert_allclose(np.asarray(q), 10.0, rtol=0.05)


# A run of 400 updates of 4 envs, checkpointed every 100; the 16-row buffer is full from update 16 on.
RESUME_ARGS = ["--algo", "dqn", "--env", "jaxrl:probe-action", "--set", "num_envs=4", "--set", "buffer_size=64",
               "--set", "batch_size=16", "--set", "learning_starts=32", "--set", "target_update_interval=40",
               "--set", "n_step=2", "--set", "prioritized=true", "--set", "hidden_sizes=[32,32]", "--set", "lr=1e-2",
               "--set", "total_timesteps=1600", "--set", "updates_per_chunk=2", "--checkpoint-every", "100",
               "--no-progress", "--eval-episodes", "0"]


@pytest.mark.timeout(300)
def test_resumed_with_a_full_buffer_is_bitwise_the_uninterrupted_run_and_evaluates(tmp_path, capsys):
    full = tmp_path / "full"
    result = jaxrl("train", "--out", str(full), *RESUME_ARGS)
    assert result.returncode == 0, result.stderr
    stopped = tmp_path / "stopped"
    proc = start_and_stop(stopped, signal.SIGTERM, RESUME_ARGS)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read()
    assert 100 <= max(complete_steps(stopped)) < 400
    result = jaxrl("resume", str(stopped), "--no-progress", "--eval-episodes", "0")
    assert result.returncode == 0, result.stderr
    assert_same_run(full, stopped, updates=400)  # the buffer, its priorities and write position included
    # `jaxrl eval` plays the greedy policy: probe-action's best return is 1 an episode.
    assert cli.main(["eval", str(stopped), "--episodes", "20", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)
    assert evaluation["checkpoint"] == 400 and evaluation["return_mean"] == 1.0


@pytest.mark.timeout(300)
def test_sweep_over_lr_and_tau_learns_the_probe_at_every_point(tmp_path):
    spec = {"algo": "dqn", "env": "jaxrl:probe-action", "method": "grid", "seeds": 1,
            "base": {**FAST, "total_timesteps": 3000, "loss": "huber"},
            "space": {"lr": [1e-3, 3e-3], "tau": [1.0, 0.5]}}
    result = sweep_run.run_sweep(spec, out=str(tmp_path / "sweep"), progress=False)
    assert result.summary["compilations"] == 1 and len(result.runs) == 4
    assert sorted((r["lr"], r["tau"]) for r in result.runs) == [(1e-3, 0.5), (1e-3, 1.0), (3e-3, 0.5), (3e-3, 1.0)]
    assert all(float(r["final_return"]) >= 0.9 for r in result.runs), result.runs


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_cartpole_at_purejaxrl_config_every_seed_balances(tmp_path):
    # PureJaxRL's DQN config (the Config defaults), 5e5 steps, 4 seeds (seed + i each): the greedy policy.
    c = api.resolve_config("dqn", overrides={"env": "gymnax:CartPole-v1", "num_seeds": 4})
    result = api.train(c, record=False, progress=False, eval_episodes=20)
    returns = result.summary["eval"]["return_per_seed"]
    assert np.median(returns) >= 475 and min(returns) >= 450, returns
