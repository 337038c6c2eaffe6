"""The memory tasks' rules: jaxrl:repeat-first and jaxrl:count-recall (envs/memory.py), and bsuite's
MemoryChain through the gymnax adapter."""

import jax
import numpy as np
import pytest

from jaxrl import envs

LENGTH = 16  # MemoryParams' default episode_length


def play(env, answer, seed=0):
    """One episode with `answer(history of observations) -> action`: observations [L+1, ...], rewards [L],
    terminated [L], truncated [L]."""
    params = env.default_params
    key = jax.random.PRNGKey(seed)
    obs, state = env.reset(key, params)
    seen, rewards, terminated, truncated = [np.asarray(obs)], [], [], []
    step = jax.jit(env.step)
    for _ in range(LENGTH):
        key, step_key = jax.random.split(key)
        obs, state, reward, term, trunc, _ = step(step_key, state, answer(seen), params)
        seen.append(np.asarray(obs))
        rewards.append(float(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
    return np.stack(seen), np.asarray(rewards), np.asarray(terminated), np.asarray(truncated)


@pytest.mark.parametrize("env_id", ["jaxrl:repeat-first", "jaxrl:count-recall"])
def test_memory_tasks_end_after_their_length_by_termination(env_id):
    env = envs.make(env_id)
    assert env_id in envs.list_ids("jaxrl:")
    _, _, terminated, truncated = play(env, lambda seen: 0)
    assert terminated.tolist() == [False] * (LENGTH - 1) + [True] and not truncated.any()


def test_repeat_first_pays_for_naming_the_first_card():
    env = envs.make("jaxrl:repeat-first", num_cards=3)
    assert env.observation_space(env.default_params).shape == (4,) and env.action_space(env.default_params).n == 3
    seen, rewards, _, _ = play(env, lambda seen: int(seen[0][:3].argmax()))
    first = seen[0][:3].argmax()
    assert seen[0][3] == 1.0 and (seen[1:, 3] == 0.0).all()  # only the first card is flagged
    assert (seen[:, :3].sum(-1) == 1.0).all() and len(set(seen[:, :3].argmax(-1))) > 1  # later cards vary
    assert rewards[0] == 0.0 and np.allclose(rewards[1:], 1 / (LENGTH - 1)) and np.isclose(rewards.sum(), 1.0)
    _, wrong, _, _ = play(env, lambda seen: (int(seen[0][:3].argmax()) + 1) % 3)
    assert wrong[0] == 0.0 and np.allclose(wrong[1:], -1 / (LENGTH - 1))
    _, current, _, _ = play(env, lambda seen: int(seen[-1][:3].argmax()))  # naming the card shown now
    later = seen[1:LENGTH, :3].argmax(-1)  # same seed, same cards
    assert np.allclose(current[1:], np.where(later == first, 1.0, -1.0) / (LENGTH - 1))


def test_count_recall_pays_for_the_count_of_the_query_card():
    env = envs.make("jaxrl:count-recall")
    assert env.observation_space(env.default_params).shape == (8,)
    assert env.action_space(env.default_params).n == LENGTH + 1

    def count(seen):  # how often the query card has been shown, this step's card included
        cards = np.stack(seen)[:, :4].argmax(-1)
        return int((cards == seen[-1][4:].argmax()).sum())

    seen, rewards, _, _ = play(env, count)
    assert (seen[:, :4].sum(-1) == 1.0).all() and (seen[:, 4:].sum(-1) == 1.0).all()
    assert np.allclose(rewards, 1 / LENGTH)
    _, wrong, _, _ = play(env, lambda seen: count(seen) + 1)
    assert np.allclose(wrong, -1 / LENGTH)


def test_memory_chain_is_reachable_with_a_memory_of_five_steps():
    env = envs.make("gymnax:MemoryChain-bsuite")
    assert env.default_params.memory_length >= 5
    obs, state = env.reset(jax.random.PRNGKey(0), env.default_params)
    assert obs.shape == env.observation_space(env.default_params).shape == (3,)
