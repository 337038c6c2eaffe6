"""Recurrent PPO (GRU and S5 memories): the S5 layer's scan with resets, replay of rollouts, evaluation,
and, by hand (slow), learning bsuite's MemoryChain where feed-forward PPO cannot."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, envs
from jaxrl.algos import ppo
from jaxrl.config import ConfigError, hparams
from jaxrl.networks import MEMORIES, S5
from jaxrl.rollout import evaluate_policy

SIZE, FEATURES, T, BATCH = 8, 5, 40, 3


@pytest.fixture(scope="module")
def s5_layer():
    """An S5 layer with steps up to ~15 (init's are 1e-3 to 0.1), so states rotate and decay within T steps,
    and inputs with resets at random steps (and at step 0 of one sequence)."""
    layer = S5(SIZE, FEATURES)
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    u = jax.random.normal(keys[0], (T, BATCH, FEATURES))
    reset = (jax.random.uniform(keys[1], (T, BATCH)) < 0.1).at[0, 0].set(True).at[T - 1, 2].set(True)
    state = jax.random.normal(keys[2], (BATCH, 2 * SIZE))
    params = jax.jit(layer.init)(keys[3], state, u[0], reset[0])
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p + 5.0 if "log_step" in jax.tree_util.keystr(path) else p, params)
    return layer, params, state, u, reset


@functools.partial(jax.jit, static_argnums=0)
def sequential_reference(layer, params, state, u, reset):
    """A loop over x_t = Lambda_bar x_{t-1} + B_bar u_t with x = 0 at resets; y_t = Re(C x_t) + D u_t."""
    lam_bar, b_bar = layer.apply(params, method=S5._discrete)
    p = params["params"]
    c, d = p["C"][0] + 1j * p["C"][1], p["D"]

    def step(x, inputs):
        u_t, reset_t = inputs
        x = jnp.where(reset_t[:, None], 0.0, x)
        x = lam_bar * x + u_t @ b_bar.T
        return x, (x @ c.T).real + d * u_t

    x, ys = jax.lax.scan(step, state[:, :SIZE] + 1j * state[:, SIZE:], (u, reset))
    return jnp.concatenate([x.real, x.imag], -1), ys


@functools.partial(jax.jit, static_argnums=0)
def sequence(layer, params, state, u, reset):
    return layer.apply(params, state, u, reset, method=S5.sequence)


def close(actual, expected, rtol=1e-4):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= rtol * np.abs(expected).max(), np.abs(actual - expected).max()


def test_s5_associative_scan_with_resets_equals_a_sequential_scan(s5_layer):
    layer, params, state, u, reset = s5_layer
    ref_state, ref_y = sequential_reference(layer, params, state, u, reset)
    final, y = sequence(layer, params, state, u, reset)
    close(y, ref_y)
    close(final, ref_state)
    # the rollout's one-step recurrence is the same recurrence
    step_state, step_ys = jax.jit(lambda x: jax.lax.scan(lambda x, inputs: layer.apply(params, x, *inputs), x,
                                                         (u, reset)))(state)
    close(step_ys, ref_y)
    close(step_state, ref_state)
    # a reset forgets the state before it: the first sequence (reset at step 0) ignores its first memory
    _, y_other = sequence(layer, params, jnp.zeros_like(state), u, reset)
    np.testing.assert_array_equal(y_other[:, 0], y[:, 0])
    assert not np.allclose(y_other[0, 1:], y[0, 1:])


@pytest.mark.parametrize("k", [1, 17, T - 1])
def test_s5_sequence_is_chunk_invariant(s5_layer, k):
    layer, params, state, u, reset = s5_layer
    assert reset[:k].any() and reset[k:].any()
    final, y = sequence(layer, params, state, u, reset)
    middle, y_first = sequence(layer, params, state, u[:k], reset[:k])
    final_chunked, y_second = sequence(layer, params, middle, u[k:], reset[k:])
    close(jnp.concatenate([y_first, y_second]), y)
    close(final_chunked, final)


def test_recurrent_config_errors_name_the_fields():
    with pytest.raises(ConfigError, match=r"recurrent minibatches hold whole env sequences: num_envs=6 is not "
                                          r"divisible by num_minibatches=4"):
        ppo.Config(recurrent=True, num_envs=6, num_minibatches=4)
    with pytest.raises(ConfigError, match=r"memory_layers=2 stacks S5 layers; memory=gru has one layer"):
        ppo.Config(recurrent=True, memory_layers=2)


@pytest.fixture(scope="module", params=[("gru", 1), ("s5", 2)], ids=["gru", "s5"])
def first_update(request):
    """One update of recurrent PPO (one epoch, one minibatch: the rollout's own parameters) on MemoryChain,
    whose 6-step episodes start inside the 16-step sequences, with a GRU or a stack of two S5 layers; its loss
    also reports the largest |log-prob replayed - log-prob of the rollout|."""

    def checked_loss(log_prob, entropy, value_out, old_log_prob, *args, **kwargs):
        loss, stats = loss_of_ppo(log_prob, entropy, value_out, old_log_prob, *args, **kwargs)
        return loss, stats | {"log_prob_error": jnp.abs(log_prob - old_log_prob).max()}

    loss_of_ppo = ppo.ppo_loss
    config = ppo.Config(env="gymnax:MemoryChain-bsuite", recurrent=True, memory=request.param[0], memory_layers=request.param[1],
                        memory_size=8,
                        hidden_sizes=(16, 16), num_envs=4, num_steps=16, update_epochs=1, num_minibatches=1,
                        total_timesteps=4 * 16)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ppo, "ppo_loss", checked_loss)
        program = ppo.make_program(config)
        state, metrics = jax.jit(lambda key: program.update(program.init(key, hparams(config))))(
            jax.random.PRNGKey(0))
    return config, state, jax.device_get(metrics)


@pytest.mark.timeout(120)
def test_recurrent_ppo_replays_its_rollout_exactly(first_update):
    config, state, metrics = first_update
    assert metrics["episodes"] >= 4 * 2  # every sequence crosses an episode start
    assert metrics["log_prob_error"] < 1e-5, metrics["log_prob_error"]
    width = 2 * config.memory_size * config.memory_layers if config.memory == "s5" else config.memory_size
    assert [m.shape for m in state.memory] == [(config.num_envs, width)] * 2


@pytest.mark.timeout(120)
def test_recurrent_ppo_policy_evaluates_with_its_memory(first_update):
    config, state, _ = first_update
    env = envs.make(config.env)
    act = ppo.make_policy(config, env, env.default_params)
    returns, lengths, finished = evaluate_policy(env, env.default_params, act, ppo.policy_state(state),
                                                 jax.random.PRNGKey(1), episodes=4)
    assert np.asarray(finished).all() and (np.asarray(lengths) == 6).all()
    assert set(np.asarray(returns).tolist()) <= {-1.0, 1.0}


# --- learning (by hand: pytest -m slow) ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_memory_chain_needs_memory():
    """The preset (memory length 5, 32k steps, 4 seeds): GRU and S5 PPO answer with the bit shown 5 steps
    before; feed-forward PPO at the same budget stays at chance (returns are +-1: mean ~0)."""
    env = "gymnax:MemoryChain-bsuite"
    for memory in MEMORIES:
        config = api.resolve_config("ppo", None, {"env": env, "memory": memory, "num_seeds": 4})
        result = api.train(config, record=False, progress=False, eval_episodes=100)
        assert result.summary["eval"]["return_mean"] >= 0.9, (memory, result.summary)
        assert result.summary["final_return_mean"] >= 0.9, (memory, result.summary)
    config = api.resolve_config("ppo", None, {"env": env, "recurrent": False, "num_seeds": 4})
    result = api.train(config, record=False, progress=False, eval_episodes=100)
    assert abs(result.summary["eval"]["return_mean"]) <= 0.2, result.summary
    assert abs(result.summary["final_return_mean"]) <= 0.2, result.summary
