"""Every source's adapter honours the environment contract under the standard vec-env stack.

One jitted rollout per env id (compilation dominates the runtime), shared by
the tests through a cache.
"""

import functools

import jax
import numpy as np
import pytest

from jaxrl import envs
from jaxrl.envs import Box, Discrete, make_vec_env
from jaxrl.errors import JaxrlError

NUM_ENVS, STEPS = 4, 4
# kwargs shorten the episodes so the rollout crosses a time limit
CASES = {
    "gymnax:CartPole-v1": {},
    "gymnax:Pendulum-v1": {},
    "gymnax:Breakout-MinAtar": {},
    "brax:inverted_pendulum": {"episode_length": 3},
    "jaxmarl:MPE_simple_spread_v3": {"max_steps": 2},
    "jaxmarl:MPE_simple_tag_v3": {},
    "jaxrl:probe-timelimit": {},
}


@functools.lru_cache(maxsize=None)
def rollout(env_id):
    """(env, actions, reset obs, per-step outputs) of STEPS random steps under jit, stacked on time."""
    env = envs.make(env_id, **CASES[env_id])
    params = env.default_params
    vec = make_vec_env(env, NUM_ENVS)
    space = env.action_space(params)
    batch = (NUM_ENVS,) if env.num_agents is None else (NUM_ENVS, env.num_agents)

    @jax.jit
    def run(key):
        obs, state = vec.reset(key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            keys = jax.random.split(act_key, batch)
            action = jax.vmap(space.sample)(keys.reshape(-1, *keys.shape[len(batch):]))
            action = action.reshape(batch + action.shape[1:])
            obs, state, reward, terminated, truncated, info = vec.step(step_key, state, action, params)
            return state, (action, obs, reward, terminated, truncated, info)

        return obs, jax.lax.scan(body, state, jax.random.split(key, STEPS))[1]

    obs, (action, *out) = jax.device_get(run(jax.random.PRNGKey(0)))
    if env.num_agents is not None:  # AgentView observations: check the view, keep the stacked obs
        view = out[0]
        assert view["active"].shape == (STEPS, NUM_ENVS, env.num_agents) and view["active"].all()
        if isinstance(space, Discrete):
            assert view["action_mask"].shape == (STEPS, NUM_ENVS, env.num_agents, space.n)
            assert view["action_mask"].any(-1).all()
        obs, out[0] = obs["obs"], view["obs"]
        out[-1] = {**out[-1], "final_obs": out[-1]["final_obs"]["obs"]}
    return env, action, obs, out


@pytest.mark.parametrize("env_id", list(CASES))
def test_adapter_contract_under_vec_env(env_id):
    env, action, reset_obs, (obs, reward, terminated, truncated, info) = rollout(env_id)
    params = env.default_params
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    assert isinstance(obs_space, (Box, Discrete)) and isinstance(act_space, (Box, Discrete))
    lead = (NUM_ENVS,) if env.num_agents is None else (NUM_ENVS, env.num_agents)

    assert reset_obs.shape == lead + obs_space.shape
    assert obs.shape == (STEPS,) + lead + obs_space.shape
    assert obs.dtype == np.dtype(obs_space.dtype) and reset_obs.dtype == obs.dtype
    assert reward.shape == terminated.shape == truncated.shape == (STEPS,) + lead
    assert reward.dtype == np.float32 and terminated.dtype == truncated.dtype == np.bool_
    assert not np.any(terminated & truncated)
    if np.issubdtype(obs.dtype, np.floating):
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reset_obs))
    assert np.all(np.isfinite(reward))
    # sampled actions lie in the space and were accepted
    assert action.shape == (STEPS,) + lead + act_space.shape
    assert bool(jax.jit(jax.vmap(act_space.contains))(action.reshape(-1, *act_space.shape)).all())
    assert np.all(info["episode_length"] >= 1)

    if env.num_agents is not None:
        n = env.num_agents
        np.testing.assert_array_equal(info["agent_ids"][0, 0], np.eye(n))
        if isinstance(act_space, Discrete):
            assert info["action_mask"].shape == (STEPS,) + lead + (act_space.n,)
            assert info["action_mask"].dtype == np.bool_ and info["action_mask"].any(-1).all()


def test_multi_agent_observations_of_different_sizes_are_zero_padded():
    env, _, reset_obs, (obs, *_rest) = rollout("jaxmarl:MPE_simple_tag_v3")
    assert env.agents[-1] == "agent_0" and env.observation_space(None).shape == (16,)  # prey sees 14 values
    assert np.all(reset_obs[:, -1, 14:] == 0) and np.all(obs[:, :, -1, 14:] == 0)
    assert np.any(obs[:, :, 0, 14:] != 0)  # predators fill all 16


@pytest.mark.parametrize("env_id", ["brax:inverted_pendulum", "jaxmarl:MPE_simple_spread_v3"])
def test_time_limit_truncates_and_auto_reset_keeps_final_obs(env_id):
    env, _, _, (obs, _, terminated, truncated, info) = rollout(env_id)
    # brax: episode_length=3 ends the third step; MPE: max_steps=2 ends the third (jaxmarl counts from 0)
    expected = np.zeros(STEPS, bool)
    expected[2] = True
    assert not terminated.any()
    np.testing.assert_array_equal(truncated.reshape(STEPS, -1), np.repeat(expected[:, None], truncated[0].size, 1))
    np.testing.assert_array_equal(info["episode_done"], np.repeat(expected[:, None], NUM_ENVS, 1))
    np.testing.assert_array_equal(info["episode_length"][2], 3)
    # at the limit the returned obs is a fresh episode's, the last one is in final_obs
    assert not np.allclose(info["final_obs"][2], obs[2])
    np.testing.assert_array_equal(info["final_obs"][1], obs[1])


def test_misspelt_brax_id_suggests_the_real_one():
    with pytest.raises(JaxrlError, match="brax:ant"):
        envs.make("brax:antt")


def test_brax_ids_are_read_at_call_time():
    from brax import envs as brax_envs

    brax_envs.register_environment("jaxrl_test_pendulum", brax_envs._envs["inverted_pendulum"])
    try:
        assert "brax:jaxrl_test_pendulum" in envs.list_ids("jaxrl_test")
    finally:
        del brax_envs._envs["jaxrl_test_pendulum"]


def test_list_ids_finds_jaxmarl_envs():
    assert "jaxmarl:MPE_simple_spread_v3" in envs.list_ids("spread")


def test_jaxmarl_env_that_fails_to_construct_raises_jaxrl_error():
    with pytest.raises(JaxrlError, match="jaxmarl:LearnedPolicyEnemySMAX"):
        envs.make("jaxmarl:LearnedPolicyEnemySMAX")  # needs policy= and params=
    with pytest.raises(JaxrlError, match="jaxmarl:storm_np"):
        envs.make("jaxmarl:storm_np")  # observations not keyed by agent


@pytest.mark.timeout(120)
def test_a_gymnax_env_loads_without_its_renderers_plotting_libraries_which_still_work_on_use():
    import subprocess
    import sys

    code = """
import sys
from jaxrl import envs
envs.make("gymnax:CartPole-v1")
assert "scipy.stats" not in sys.modules and "pandas" not in sys.modules, "renderer libraries imported"
from jaxrl import plots
import numpy as np
import pathlib, tempfile
out = plots.plot_curves(pathlib.Path(tempfile.mkdtemp()), {"episodes": np.ones((1, 3)),
                        "episode_return_sum": np.ones((1, 3))}, 10, "t")
assert out.stat().st_size > 1000
import gymnax.environments.misc.pong as pong
assert len(pong.sns.color_palette("cubehelix", 3)) == 3
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.timeout(120)
def test_a_jaxmarl_env_builds_without_the_other_families_which_load_when_jaxmarl_is_used():
    import subprocess
    import sys

    code = """
import sys
from jaxrl import envs
env = envs.make("jaxmarl:MPE_simple_spread_v3")
heavy = [m for m in sys.modules if m.startswith(("jaxmarl.environments.storm", "jaxmarl.environments.mabrax", "brax"))]
assert not heavy, heavy
assert "jaxmarl:MPE_simple_spread_v3" in envs.list_ids("spread")  # the static list: jaxmarl's not needed
assert "jaxmarl.environments.storm" not in sys.modules
import jaxmarl
assert type(jaxmarl.make("MPE_simple_spread_v3")) is type(env.unwrapped._env) is jaxmarl.environments.SimpleSpreadMPE
assert "jaxmarl.environments.storm" in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stderr[-2000:]


def test_jaxmarl_ids_built_from_their_family_are_the_classes_jaxmarl_make_builds(monkeypatch):
    import importlib

    import jaxmarl.registration

    from jaxrl.envs.jaxmarl_adapter import _CLASSES

    for family, name in set(_CLASSES.values()):
        assert getattr(importlib.import_module(f"jaxmarl.environments.{family}"), name) is \
            getattr(jaxmarl.registration, name), (family, name)
        monkeypatch.setattr(jaxmarl.registration, name, lambda name=name, **kwargs: name)  # make returns the name
    assert {env_id: jaxmarl.registration.make(env_id) for env_id in _CLASSES} == \
        {env_id: name for env_id, (_, name) in _CLASSES.items()}
