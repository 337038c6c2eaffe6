"""An on-device replay buffer: a pytree kept in the runner state, so it is checkpointed, resumed bitwise
and sharded with its environments like the rest of the state.

A ring of `rows = capacity // num_envs` rows, each one step of every env: storage leaves are
[rows, num_envs, ...], so the env axis (1) splits over devices with the envs (`Program.env_axes`).
Pure functions: `create`, `add` (steps of all envs), `sample` (uniform or proportional to priorities,
with n-step returns computed at sampling time), `update_priorities`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.devices import NO_ENV_AXIS
from jaxrl.errors import JaxrlError


@struct.dataclass
class Step:
    """What the buffer stores of one env step; leaves [T, num_envs, ...] when added, [rows, num_envs, ...] stored."""

    obs: jax.Array  # [*obs_shape]
    action: jax.Array  # [*act_shape]
    reward: jax.Array  # []
    terminated: jax.Array  # [] bool: the episode ended in a terminal state (no bootstrap)
    truncated: jax.Array  # [] bool: cut by a time limit and not terminated (bootstrap from next_obs)
    next_obs: jax.Array  # [*obs_shape]: the true next observation, the final one where the episode ended

    @classmethod
    def of(cls, transition) -> "Step":
        """The stored part of a `jaxrl.rollout.Transition` (any leading axes)."""
        return cls(transition.obs, transition.action, transition.reward, transition.terminated,
                   transition.done & ~transition.terminated, transition.next_obs)


@struct.dataclass
class ReplayBuffer:
    storage: Step  # leaves [rows, num_envs, ...]
    position: jax.Array  # int32: the row the next `add` writes
    filled: jax.Array  # int32: rows written so far, at most `rows`
    priorities: jax.Array | None  # [rows, num_envs] float32 (prioritised replay; 0 where unwritten), else None
    max_priority: jax.Array | None  # float32: the priority a new transition gets

    @property
    def rows(self) -> int:
        return self.storage.reward.shape[0]

    @property
    def num_envs(self) -> int:
        return self.storage.reward.shape[1]


@struct.dataclass
class Batch:
    """`batch_size` sampled transitions with their n-step returns, leaves [batch_size, ...]."""

    obs: jax.Array  # [B, *obs_shape]
    action: jax.Array  # [B, *act_shape]
    reward: jax.Array  # [B]: sum_{k<m} gamma^k r_{t+k} over the m <= n steps taken
    discount: jax.Array  # [B]: gamma^m, or 0 when step m-1 terminated
    next_obs: jax.Array  # [B, *obs_shape]: the observation to bootstrap from, after step m-1
    weight: jax.Array  # [B]: importance weight (prioritised; 1 when uniform)
    row: jax.Array  # [B] int32: where each transition is stored (for `update_priorities`)
    env: jax.Array  # [B] int32


def create(example: Step, capacity: int, prioritized: bool = False) -> ReplayBuffer:
    """An empty buffer of `capacity` transitions for steps shaped like `example` (leaves [num_envs, ...];
    arrays or jax.ShapeDtypeStruct). `capacity` must be a multiple of num_envs."""
    num_envs = example.reward.shape[0]
    if capacity % num_envs or capacity < num_envs:
        raise JaxrlError(f"a replay buffer of {capacity} transitions does not split into rows of "
                         f"num_envs={num_envs}: give a positive multiple of {num_envs}")
    rows = capacity // num_envs
    storage = jax.tree.map(lambda x: jnp.zeros((rows,) + tuple(x.shape), x.dtype), example)
    priorities = jnp.zeros((rows, num_envs), jnp.float32) if prioritized else None
    return ReplayBuffer(storage, jnp.int32(0), jnp.int32(0), priorities,
                        jnp.float32(1.0) if prioritized else None)


def add(buffer: ReplayBuffer, steps: Step) -> ReplayBuffer:
    """Write `T` steps of every env (leaves [T, num_envs, ...], T <= rows; T = 1: one step) over the oldest
    rows, in order; they get the highest priority seen so far (prioritised replay)."""
    num_steps = steps.reward.shape[0]
    if num_steps > buffer.rows:
        raise JaxrlError(f"{num_steps} steps at once do not fit a replay buffer of {buffer.rows} rows")
    rows = (buffer.position + jnp.arange(num_steps)) % buffer.rows
    storage = jax.tree.map(lambda stored, x: stored.at[rows].set(x.astype(stored.dtype)), buffer.storage, steps)
    priorities = buffer.priorities
    if priorities is not None:
        priorities = priorities.at[rows].set(buffer.max_priority)
    return buffer.replace(storage=storage, position=(buffer.position + num_steps) % buffer.rows,
                          filled=jnp.minimum(buffer.filled + num_steps, buffer.rows), priorities=priorities)


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int, gamma, n_step: int = 1, alpha=0.6,
           beta=0.4) -> Batch:
    """`batch_size` transitions drawn with replacement from the filled rows: uniformly, or with prioritised
    replay with probability P(i) = p_i^alpha / sum_j p_j^alpha and importance weight (N P(i))^-beta divided
    by the largest such weight in the buffer (Schaul et al. 2016).

    n-step returns: from each drawn step t, the discounted rewards of up to `n_step` steps of the same env,
    cut after the first step that terminated or was truncated, and before the write head (a row written
    after t's window would be a newer step of another episode, or stale). A terminated last step
    does not bootstrap; a truncated one, or a cut, bootstraps from its own `next_obs`.
    """
    if buffer.priorities is None:
        # Uniform over the filled (row, env) pairs, in one draw.
        flat = jax.random.randint(key, (batch_size,), 0, buffer.filled * buffer.num_envs)
        row, env = flat // buffer.num_envs, flat % buffer.num_envs
        weight = jnp.ones(batch_size, jnp.float32)
    else:
        row, env, weight = _prioritized_indices(buffer, key, batch_size, alpha, beta)
    return _n_step_batch(buffer, row, env, gamma, n_step, weight)


def _prioritized_indices(buffer: ReplayBuffer, key, batch_size: int, alpha, beta):
    filled = (jnp.arange(buffer.rows) < buffer.filled)[:, None]
    mass = jnp.where(filled, buffer.priorities ** alpha, 0.0).reshape(-1)
    cdf = jnp.cumsum(mass)
    total = cdf[-1]
    # Inverse CDF: the first entry whose cumulative mass exceeds u; an entry of zero mass never is.
    u = jax.random.uniform(key, (batch_size,)) * total
    flat = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), mass.size - 1)
    prob = mass[flat] / total
    smallest = jnp.min(jnp.where(mass > 0, mass, jnp.inf)) / total
    weight = (smallest / prob) ** beta  # (N P(i))^-beta / max_j (N P(j))^-beta
    return flat // buffer.num_envs, flat % buffer.num_envs, weight.astype(jnp.float32)


def _n_step_batch(buffer: ReplayBuffer, row, env, gamma, n_step: int, weight) -> Batch:
    s = buffer.storage
    k = jnp.arange(n_step)
    window = (row[:, None] + k) % buffer.rows  # [B, n]
    ahead = (buffer.position - 1 - row) % buffer.rows  # rows written after `row`
    ended = s.terminated[window, env[:, None]] | s.truncated[window, env[:, None]]
    ended_before = jnp.cumsum(ended, axis=1) - ended
    taken = (k <= ahead[:, None]) & (ended_before == 0)  # [B, n]; step 0 always
    steps = taken.sum(1)
    discounts = jnp.asarray(gamma, jnp.float32) ** k
    reward = (jnp.where(taken, s.reward[window, env[:, None]], 0.0) * discounts).sum(1)
    last = jnp.take_along_axis(window, (steps - 1)[:, None], 1)[:, 0]
    discount = jnp.where(s.terminated[last, env], 0.0, jnp.asarray(gamma, jnp.float32) ** steps)
    return Batch(s.obs[row, env], s.action[row, env], reward, discount, s.next_obs[last, env], weight,
                 row.astype(jnp.int32), env.astype(jnp.int32))


def update_priorities(buffer: ReplayBuffer, row: jax.Array, env: jax.Array, priority: jax.Array) -> ReplayBuffer:
    """Set the priorities ([B], > 0; typically |TD error| + a small constant) of the transitions at (row, env)
    [B] after a loss; later additions start at the highest priority seen."""
    return buffer.replace(priorities=buffer.priorities.at[row, env].set(priority),
                          max_priority=jnp.maximum(buffer.max_priority, priority.max()))


def env_axes(buffer: ReplayBuffer) -> ReplayBuffer:
    """For `Program.env_axes`: axis 1 for the stored steps and priorities, none for the counters."""
    counters = jax.tree.map(lambda _: NO_ENV_AXIS, buffer)
    return counters.replace(storage=jax.tree.map(lambda _: 1, buffer.storage),
                            priorities=None if buffer.priorities is None else 1)
