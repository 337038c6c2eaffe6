import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs
from jaxrl.envs import AutoReset, ClipAction, EpisodeStatistics, NormalizeObservation, Vectorize


def test_auto_reset_keeps_terminated_and_truncated_apart_and_exposes_final_obs():
    env = envs.make("jaxrl:probe-timelimit")
    params = env.default_params.replace(max_steps=3)
    wrapped = EpisodeStatistics(AutoReset(env))
    obs, state = wrapped.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(lambda k, s: wrapped.step(k, s, jnp.int32(0), params))
    flags = []
    for t in range(7):
        obs, state, reward, terminated, truncated, info = step(jax.random.PRNGKey(t), state)
        flags.append((bool(terminated), bool(truncated), bool(info["episode_done"]), int(info["episode_length"])))
    assert [f[1] for f in flags] == [False, False, True, False, False, True, False]
    assert not any(f[0] for f in flags)
    assert [f[3] for f in flags if f[2]] == [3, 3]
    assert int(state.env_state.time) == 1  # reset after step 6, one step into the third episode


def test_auto_reset_returns_reset_obs_and_final_obs_on_termination():
    env = envs.make("gymnax:CartPole-v1")
    params = env.default_params
    wrapped = AutoReset(env)
    _, state = wrapped.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(lambda k, s: wrapped.step(k, s, jnp.int32(1), params))
    for t in range(200):  # always pushing right: the pole falls within a few dozen steps
        obs, state, _, terminated, truncated, info = step(jax.random.PRNGKey(t), state)
        if terminated:
            break
    assert bool(terminated) and not bool(truncated)
    final = np.asarray(info["final_obs"])
    assert np.abs(final[2]) > 0.2 or np.abs(final[0]) > 2.4  # pole angle / cart position beyond the limit
    assert np.all(np.abs(np.asarray(obs)) <= 0.05)  # fresh episode: uniform(-0.05, 0.05)
    assert int(state.time) == 0


def test_episode_statistics_sum_rewards_per_episode():
    env = envs.make("jaxrl:probe-timelimit")
    params = env.default_params.replace(max_steps=4)
    vec = Vectorize(EpisodeStatistics(AutoReset(env)), 3)
    _, state = vec.reset(jax.random.PRNGKey(0), params)
    for t in range(4):
        _, state, _, _, _, info = vec.step(jax.random.PRNGKey(t), state, jnp.zeros(3, jnp.int32), params)
    np.testing.assert_array_equal(info["episode_done"], [True] * 3)
    np.testing.assert_allclose(info["episode_return"], [4.0] * 3)
    np.testing.assert_allclose(state.episode_return, [0.0] * 3)


def test_normalize_observation_tracks_batch_statistics():
    env = envs.make("gymnax:CartPole-v1")
    params = env.default_params
    vec = NormalizeObservation(Vectorize(EpisodeStatistics(AutoReset(env)), 64))
    _, state = vec.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(lambda k, s, a: vec.step(k, s, a, params))
    for t in range(20):
        action = jax.random.randint(jax.random.PRNGKey(100 + t), (64,), 0, 2)
        normed, state, _, _, _, info = step(jax.random.PRNGKey(t), state, action)
    stats = state.obs_stats
    assert float(stats.count) > 64 * 20
    assert np.all(np.abs(np.asarray(normed)) < 10.0)
    np.testing.assert_allclose(np.asarray(normed).mean(0), 0.0, atol=0.6)


def test_clip_action_bounds_continuous_actions():
    env = envs.make("jaxrl:probe-continuous")
    params = env.default_params
    clipped = ClipAction(env)
    obs, state = clipped.reset(jax.random.PRNGKey(0), params)
    _, _, reward, _, _, _ = clipped.step(jax.random.PRNGKey(1), state, jnp.array([5.0]), params)
    assert float(reward) == float(-(1.0 - obs[0]) ** 2)
