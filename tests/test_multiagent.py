"""Multi-agent PPO (IPPO, MAPPO, recurrent): mechanics in seconds, learning marked slow. Self-play:
test_selfplay.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos, api, envs
from jaxrl.errors import JaxrlError
from jaxrl.losses import ppo_policy_loss, value_loss

pytestmark = pytest.mark.timeout(300)


# --- bad input: one line, before anything compiles -------------------------------------------------

@pytest.mark.parametrize("algo, overrides, message", [
    ("ippo", {"env": "gymnax:CartPole-v1"}, "ippo is a multi-agent algorithm; gymnax:CartPole-v1 is single-agent"),
    ("ppo", {"env": "jaxrl:tictactoe"}, "ppo is a single-agent algorithm; jaxrl:tictactoe has 2 agents"),
    ("ippo", {"selfplay": "pfsp"}, "self-play needs a two-sided zero-sum game; jaxmarl:MPE_simple_spread_v3"),
    ("ippo", {"env": "jaxrl:connect4", "selfplay": "pool", "num_envs": 12},
     "num_envs=12 must split into 1 policies x 4 opponent groups x 2 seats; use a multiple of 8"),
    ("ippo", {"env": "jaxrl:connect4", "population_size": 4}, "population_size=4 needs selfplay=population"),
    ("ippo", {"num_minibatches": 7}, "(num_envs/policies)*num_agents*num_steps = (16/1)*3*128 = 6144 is not "
                                     "divisible by num_minibatches=7"),
    ("ippo", {"recurrent": True, "num_minibatches": 5}, "recurrent minibatches hold whole sequences: "
     "(num_envs/policies)*num_agents = (16/1)*3 = 48 is not divisible by num_minibatches=5"),
    ("ippo", {"env": "jaxrl:tictactoe", "recurrent": True}, "recurrent policies train with selfplay=off only"),
    ("ippo", {"env": "jaxrl:tictactoe", "selfplay": "latest", "opponent_random": 0.1},
     "opponent_random=0.1 applies to the opponents of selfplay=pool, pfsp or population; selfplay=latest"),
    ("ippo", {"env": "jaxmarl:SMAX/3s_vs_5z", "selfplay": "latest"}, "self-play needs a two-sided zero-sum game"),
    ("ippo", {"conv_channels": [8]}, "conv_channels=[8] needs image observations [height, width, channels]; "
                                     "jaxmarl:MPE_simple_spread_v3 gives shape [18]"),
    ("ippo", {"env": "jaxrl:connect4", "conv_channels": [8, 8], "conv_kernel": 4},
     "2 convolutions of 4x4 do not fit jaxrl:connect4's 6x7 observation"),
    ("ippo", {"conv_channels": [8], "recurrent": True}, "convolutions are for feed-forward policies"),
    ("ippo", {"env": "jaxrl:connect4", "selfplay": "latest", "scripted_opponents": ["heuristic"]},
     "scripted_opponents=['heuristic'] join the opponents of selfplay=pool, pfsp or population; selfplay=latest"),
    ("ippo", {"env": "jaxrl:connect4", "selfplay": "pfsp", "scripted_opponents": ["minimax"]},
     "scripted_opponents: jaxrl:connect4 has no scripted player 'minimax' (it has: random, heuristic)"),
    ("ippo", {"env": "jaxrl:tictactoe", "selfplay": "pfsp", "scripted_share": 0.5},
     "scripted_share=0.5 reserves opponent draws for scripted_opponents, and there are none"),
])
def test_bad_multiagent_configs_fail_before_compiling(algo, overrides, message, monkeypatch):
    from jaxrl import loop

    monkeypatch.setattr(loop, "compile_program", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(JaxrlError) as err:
        config = api.resolve_config(algo, None, overrides)
        algos.get(algo).make_program(config)
    assert message in str(err.value)


def test_population_that_does_not_fit_in_memory_is_refused(monkeypatch):
    from jaxrl import loop

    monkeypatch.setattr(loop, "compile_program", lambda *a, **k: pytest.fail("compiled"))
    config = api.resolve_config("ippo", None, {"env": "jaxrl:connect4", "selfplay": "population",
                                               "population_size": 4096, "num_envs": 2 * 4096 * 4,
                                               "hidden_sizes": [1024, 1024], "total_timesteps": 1e9})
    with pytest.raises(JaxrlError, match=r"needs about .* GB .* has .* GB"):
        api.train(config, record=False, progress=False)


# --- the pieces -----------------------------------------------------------------------------------------

def test_agent_view_carries_masks_activity_and_world_state():
    env = envs.make_vec_env(envs.make("jaxrl:tictactoe"), 4, world_state=True)
    view, state = env.reset(jax.random.PRNGKey(0), None)
    assert view["obs"].shape == (4, 2, 3, 3, 3) and view["world_state"].shape == (4, 2 * 27)
    np.testing.assert_array_equal(view["active"], [[True, False]] * 4)
    assert view["action_mask"][:, 0].all() and not view["action_mask"][:, 1].any()
    view, *_ = env.step(jax.random.PRNGKey(1), state, jnp.zeros((4, 2), jnp.int32), None)
    np.testing.assert_array_equal(view["active"], [[False, True]] * 4)
    assert not view["action_mask"][:, 1, 0].any() and view["action_mask"][:, 1, 1:].all()  # cell 0 taken


def test_weighted_losses_equal_the_losses_of_the_samples_that_count():
    rng = np.random.default_rng(0)
    logp, old, adv, v, old_v, tgt = (jnp.asarray(rng.normal(size=20), jnp.float32) for _ in range(6))
    w = jnp.asarray(rng.random(20) < 0.5, jnp.float32)
    keep = np.asarray(w) > 0
    for weighted, plain in zip(ppo_policy_loss(logp, old, adv, 0.2, w),
                               ppo_policy_loss(logp[keep], old[keep], adv[keep], 0.2)):
        np.testing.assert_allclose(weighted, plain, rtol=1e-5)
    np.testing.assert_allclose(value_loss(v, old_v, tgt, 0.2, True, w),
                               value_loss(v[keep], old_v[keep], tgt[keep], 0.2, True), rtol=1e-5)



# --- whole runs -----------------------------------------------------------------------------------------

def test_mappo_runs_on_mpe_with_a_world_state_critic():
    config = api.resolve_config("mappo", None, {"num_envs": 4, "num_steps": 32, "total_timesteps": 4 * 32 * 3})
    result = api.train(config, record=False, progress=False, eval_episodes=2)
    critic_in = result.state.params["params"]["critic"]["Dense_0"]["kernel"].shape[-2]
    assert critic_in == 3 * 18 + 3  # all agents' observations + the agent's id
    assert np.isfinite(result.metrics["value_loss"]).all() and result.summary["eval"]["episodes"] == 2


@pytest.mark.slow  # ~35 s cold; the shared recurrent rollout's exact replay stays in tests/test_recurrent.py (PPO)
def test_recurrent_ippo_replays_its_rollout_exactly_and_evaluates():
    """PPO on GRU policies replays each rollout from its first hidden state with the resets at
    episode starts; a minibatch taken before any update then has the rollout's own log-probs
    (ratio 1). With the resets left out, approx_kl here is 3e-4 to 4e-3."""
    config = api.resolve_config("ippo", None, {"recurrent": True, "memory_size": 32, "num_envs": 8, "num_steps": 64,
                                               "update_epochs": 1, "num_minibatches": 1, "lr": 0.03,
                                               "anneal_lr": False, "total_timesteps": 8 * 64 * 4})
    result = api.train(config, record=False, progress=False, eval_episodes=2)
    m = {k: np.asarray(v).reshape(-1) for k, v in result.metrics.items()}
    assert m["episodes"].sum() >= 8 * 2 * 4  # 25-step episodes: every rollout crosses episode starts
    assert m["entropy"][-1] < m["entropy"][0] - 0.05  # the policy has moved away from uniform
    assert np.abs(m["approx_kl"]).max() < 1e-6 and m["clip_frac"].max() == 0.0, m
    assert result.summary["eval"]["all_finished"] and np.isfinite(result.summary["eval"]["return_mean"])


# --- learning -------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ippo_on_simple_spread_reaches_jaxmarls_return():
    config = api.resolve_config("ippo", None, {"total_timesteps": 2_000_000})
    result = api.train(config, record=False, progress=False, eval_episodes=0)
    assert result.summary["final_return_mean"] > -60.9, result.summary


