"""Categorical value heads (jaxrl.losses.ValueHead: HL-Gauss, two-hot) and the critics that use them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, envs
from jaxrl.algos import ppo
from jaxrl.config import ConfigError
from jaxrl.losses import ValueHead

HL_GAUSS = [ValueHead("hl_gauss", 51, -10.0, 110.0, 0.75),  # ppo's CartPole preset
            ValueHead("hl_gauss", 101, -1.0, 1.0, 0.75), ValueHead("hl_gauss", 21, 0.0, 10.0, 0.5)]
TWO_HOT = [ValueHead("two_hot", 51, -10.0, 110.0), ValueHead("two_hot", 2, 0.0, 1.0)]


def decode(head, probs):
    """The value a head reads from these bin probabilities (its logits are their logs)."""
    return head.value(jnp.log(probs))


@pytest.mark.parametrize("head", HL_GAUSS, ids=lambda h: f"{h.bins}bins")
def test_hl_gauss_round_trip_is_within_a_twentieth_of_a_bin(head):
    margin = 4 * head.sigma * head.bin_width  # near an edge the Gaussian is cut off and renormalised
    targets = jnp.linspace(head.low + margin, head.high - margin, 2001)
    error = np.abs(np.asarray(decode(head, head.project(targets)) - targets))
    assert error.max() <= 0.05 * head.bin_width


@pytest.mark.parametrize("head", TWO_HOT, ids=lambda h: f"{h.bins}bins")
def test_two_hot_round_trip_is_exact_and_clips_to_the_support(head):
    targets = jnp.concatenate([jnp.linspace(head.low, head.high, 1001), head.centers()])
    np.testing.assert_allclose(head.project(targets) @ head.centers(), targets, atol=1e-5 * (head.high - head.low))
    outside = head.project(jnp.array([head.low - 5.0, head.high + 5.0])) @ head.centers()
    np.testing.assert_allclose(outside, [head.low, head.high], atol=1e-5 * (head.high - head.low))


@pytest.mark.parametrize("head", HL_GAUSS + TWO_HOT, ids=lambda h: f"{h.kind}-{h.bins}bins")
def test_projections_are_distributions(head):
    targets = jnp.concatenate([jnp.array([head.low - 1e3, head.high + 1e3]), jnp.linspace(head.low, head.high, 2001)])
    probs = np.asarray(head.project(targets))
    assert probs.shape == (len(targets), head.bins)
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)


@pytest.mark.parametrize("head", [HL_GAUSS[0], TWO_HOT[0]], ids=lambda h: h.kind)
def test_cross_entropy_step_moves_the_value_towards_the_target(head):
    uniform = jnp.zeros(head.bins)  # its value is the middle of the support
    middle = (head.low + head.high) / 2
    for target in (middle + 30.0, middle - 30.0):
        grad, target_grad = jax.grad(lambda out, y: head.cross_entropy(out, y), argnums=(0, 1))(uniform, target)
        step = float(head.value(uniform - 10.0 * grad)) - middle
        assert np.sign(step) == np.sign(target - middle)
        assert float(grad[jnp.argmin(jnp.abs(head.centers() - target))]) < 0  # the target's bin is pushed up
        assert float(target_grad) == 0.0  # the projected target is a constant


def test_an_empty_value_range_is_refused_before_compiling():
    with pytest.raises(ConfigError, match="value_min=5.0 must be below value_max=5.0"):
        api.resolve_config("ppo", overrides={"value_head": "hl_gauss", "value_min": 5.0, "value_max": 5.0})
    with pytest.raises(ConfigError, match="value_min=5.0 must be below value_max=1.0"):
        api.resolve_config("ippo", overrides={"value_head": "two_hot", "value_min": 5.0, "value_max": 1.0})


@pytest.mark.timeout(150)
def test_vmapped_hl_gauss_critic_finishes_and_learns_the_bootstrapped_value():
    # Two seeds in one program: the configuration that hung on jax 0.10's CPU backend before the erf argument
    # was clipped. Reward 1 forever, cut after 10 steps, gamma 0.9: V = 10 everywhere (see test_learning.py).
    config = api.resolve_config("ppo", overrides=dict(
        env="jaxrl:probe-timelimit", num_envs=8, num_steps=16, num_minibatches=2, update_epochs=4, gamma=0.9,
        lr=3e-3, anneal_lr=False, total_timesteps=40_000, num_seeds=2, value_head="hl_gauss", value_bins=21,
        value_min=-5.0, value_max=15.0))
    result = api.train(config, record=False, progress=False, eval_episodes=0)
    env = envs.make(config.env)
    network, _ = ppo.make_network(config, env, env.default_params)
    out = jax.vmap(lambda p: network.apply(p, np.zeros((1, 1), np.float32), method=type(network).critic_outputs))(
        result.state.params)
    assert out.shape == (2, 1, 21)
    np.testing.assert_allclose(config.value_head_spec.value(out)[:, 0], 10.0, rtol=0.05)
    first, second = jax.tree.leaves(result.state.params)[0]
    assert not np.array_equal(first, second)  # the seeds differ


@pytest.mark.parametrize("recurrent", [False, True])
def test_ippo_critics_output_one_logit_per_bin(recurrent):
    """ippo/mappo share the critic and the loss: one update traced (not compiled) with a two-hot critic."""
    from jaxrl.algos import ippo
    from jaxrl.config import hparams

    config = api.resolve_config("mappo", overrides=dict(
        env="jaxmarl:MPE_simple_spread_v3", num_envs=4, num_steps=8, num_minibatches=2, update_epochs=1,
        total_timesteps=32, recurrent=recurrent, memory_size=8, value_head="two_hot", value_bins=11))
    program = ippo.make_program(config)
    state, metrics = jax.eval_shape(lambda key: program.update(program.init(key, hparams(config))),
                                    jax.random.PRNGKey(0))
    assert jax.tree.leaves(state.params["params"]["critic"])[-1].shape[-1] == 11  # the critic's last layer
    assert metrics["value_loss"].shape == ()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_hl_gauss_critic_solves_cartpole_at_purejaxrl_config_on_every_seed():
    """Issue acceptance: PPO with an HL-Gauss critic (ppo's CartPole preset support) at PureJaxRL's CartPole config
    (benchmarks/peers.py PUREJAXRL_CARTPOLE), 16 seeds in one program, every seed's greedy evaluation (the path
    `jaxrl eval` takes) >= 450."""
    purejaxrl = dict(num_envs=4, num_steps=128, update_epochs=4, num_minibatches=4, lr=2.5e-4, anneal_lr=True,
                     gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                     activation="tanh", total_timesteps=500_000)
    config = api.resolve_config("ppo", overrides={**purejaxrl, "env": "gymnax:CartPole-v1", "num_seeds": 16,
                                                  "value_head": "hl_gauss"})
    result = api.train(config, record=False, progress=False, eval_episodes=10)
    returns = result.summary["eval"]["return_per_seed"]
    assert len(returns) == 16 and min(returns) >= 450, returns
