"""The replay buffer: ring writes, n-step returns against a NumPy reference, prioritised sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxrl import replay
from jaxrl.errors import JaxrlError

ROWS, NUM_ENVS = 8, 3


def random_steps(num_steps: int, seed: int = 0):
    """`num_steps` steps of NUM_ENVS envs; obs t*10 + env identifies each step; about one step in seven
    terminates and as many are truncated."""
    rng = np.random.default_rng(seed)
    ids = np.arange(num_steps)[:, None] * 10.0 + np.arange(NUM_ENVS)
    end = rng.choice(3, size=(num_steps, NUM_ENVS), p=[0.7, 0.15, 0.15])
    return replay.Step(obs=ids[..., None].astype(np.float32),
                       action=rng.integers(0, 4, (num_steps, NUM_ENVS)).astype(np.int32),
                       reward=rng.normal(size=(num_steps, NUM_ENVS)).astype(np.float32),
                       terminated=end == 1, truncated=end == 2,
                       next_obs=(ids[..., None] + 0.5).astype(np.float32))


def fill(steps, prioritized=False, chunks=(1,)):
    """A buffer of ROWS x NUM_ENVS after adding `steps` in adds of the given sizes (cycled)."""
    example = jax.tree.map(lambda x: x[0], steps)
    buffer = replay.create(example, ROWS * NUM_ENVS, prioritized)
    t, i = 0, 0
    while t < steps.reward.shape[0]:
        n = chunks[i % len(chunks)]
        buffer = jax.jit(replay.add)(buffer, jax.tree.map(lambda x: x[t:t + n], steps))
        t, i = t + n, i + 1
    return buffer


def reference_n_step(steps, total: int, t: int, env: int, gamma: float, n: int):
    """The n-step target of step `t` of `env` when `total` steps were added: steps after t must still be
    in the buffer (the newest ROWS steps) and in t's episode."""
    reward, k = 0.0, 0
    while True:
        reward += gamma ** k * float(steps.reward[t + k, env])
        k += 1
        last = t + k - 1
        if steps.terminated[last, env] or steps.truncated[last, env] or k == n or last == total - 1:
            break
    discount = 0.0 if steps.terminated[last, env] else gamma ** k
    return reward, discount, float(steps.next_obs[last, env, 0])


@pytest.mark.parametrize("total, chunks", [(5, (1,)), (21, (1,)), (21, (3, 2))], ids=["partly-filled", "wrapped",
                                                                                       "wrapped-multi-step-adds"])
def test_ring_and_n_step_returns_match_a_numpy_reference(total, chunks):
    steps = random_steps(total)
    buffer = fill(steps, chunks=chunks)
    assert int(buffer.filled) == min(total, ROWS) and int(buffer.position) == total % ROWS
    gamma, n = 0.9, 4
    batch = jax.jit(replay.sample, static_argnums=(2, 4))(buffer, jax.random.PRNGKey(0), 2000, gamma, n)
    oldest = max(0, total - ROWS)
    t = (np.asarray(batch.obs[:, 0]) // 10).astype(int)  # the step each sample is
    env = np.asarray(batch.env)
    assert t.min() == oldest and t.max() == total - 1  # every filled row, nothing stale or unwritten
    np.testing.assert_array_equal(np.asarray(batch.obs[:, 0]) % 10, env)
    np.testing.assert_array_equal(np.asarray(batch.row), t % ROWS)
    np.testing.assert_array_equal(np.asarray(batch.action), steps.action[t, env])
    want = np.array([reference_n_step(steps, total, ti, ei, gamma, n) for ti, ei in zip(t, env)])
    np.testing.assert_allclose(np.asarray(batch.reward), want[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(batch.discount), want[:, 1], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(batch.next_obs[:, 0]), want[:, 2])
    np.testing.assert_array_equal(np.asarray(batch.weight), 1.0)
    # The cases the reference covers all occur: windows cut by a termination (discount 0), by a truncation
    # or the write head (discount gamma^k, k < n), and full windows (gamma^n).
    assert {0.0, gamma ** n} <= set(np.round(want[:, 1], 6)) and any(d > gamma ** n + 1e-6 for d in want[:, 1])
    assert np.any(t == total - 1)  # the newest step: a window of one, cut at the write head


def test_add_refuses_more_steps_than_rows():
    steps = random_steps(ROWS + 1)
    buffer = replay.create(jax.tree.map(lambda x: x[0], steps), ROWS * NUM_ENVS)
    with pytest.raises(JaxrlError, match="9 steps at once do not fit a replay buffer of 8 rows"):
        replay.add(buffer, steps)
    with pytest.raises(JaxrlError, match="a replay buffer of 10 transitions does not split into rows of num_envs=3"):
        replay.create(jax.tree.map(lambda x: x[0], steps), 10)


def test_prioritized_sampling_follows_the_priorities():
    steps = random_steps(ROWS - 2)  # two rows unwritten: never drawn
    buffer = fill(steps, prioritized=True)
    np.testing.assert_array_equal(np.asarray(buffer.priorities[:ROWS - 2]), 1.0)  # new: the max priority
    rows, envs = np.divmod(np.arange((ROWS - 2) * NUM_ENVS), NUM_ENVS)
    priority = np.arange(1, rows.size + 1, dtype=np.float32)
    buffer = replay.update_priorities(buffer, jnp.asarray(rows), jnp.asarray(envs), jnp.asarray(priority))
    assert float(buffer.max_priority) == rows.size
    alpha, beta, draws = 0.7, 0.5, 40_000
    batch = jax.jit(replay.sample, static_argnums=(2, 4))(buffer, jax.random.PRNGKey(1), draws, 0.99, 1, alpha, beta)
    flat = np.asarray(batch.row) * NUM_ENVS + np.asarray(batch.env)
    assert flat.max() < rows.size
    expected = priority ** alpha / (priority ** alpha).sum()
    counts = np.bincount(flat, minlength=rows.size)
    assert stats.chisquare(counts, expected * draws).pvalue > 1e-3
    # Importance weights (N P(i))^-beta over their largest value: (P_min / P(i))^beta.
    np.testing.assert_allclose(np.asarray(batch.weight), (expected.min() / expected[flat]) ** beta, rtol=1e-5)
    # A new step gets the highest priority so far.
    buffer = jax.jit(replay.add)(buffer, jax.tree.map(lambda x: x[:1], steps))
    np.testing.assert_array_equal(np.asarray(buffer.priorities[ROWS - 2]), rows.size)
