"""Memory tasks in the style of POPGym (Morad et al. 2023): what the agent must act on was shown steps ago.

- `repeat-first`: a random card (one of `num_cards`) each step; the first one is flagged. From the second
  step on, the reward is +1/(L-1) for naming the first card and -1/(L-1) otherwise, over episodes of
  L = `episode_length` steps: returns lie in [-1, 1], about 0 for a policy without memory.
- `count-recall`: each step shows a card and a query card; the agent names how many times the query card
  has been shown so far in the episode, this step's included (0 to L): +1/L when right, -1/L when wrong.

Both end by termination after L steps (the task is over; nothing to bootstrap).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.envs.core import Environment
from jaxrl.envs.spaces import Box, Discrete


@struct.dataclass
class MemoryParams:
    episode_length: int = 16


@struct.dataclass
class RepeatFirstState:
    first: jax.Array  # the card to repeat
    card: jax.Array  # the card shown now
    time: jax.Array  # steps taken


@struct.dataclass
class CountRecallState:
    counts: jax.Array  # [num_cards] times each card was shown, the current one included
    card: jax.Array
    query: jax.Array
    time: jax.Array


class _CardTask(Environment):
    discrete = True

    def __init__(self, name: str, num_cards: int = 4):
        self.env_id = f"jaxrl:{name}"
        self.num_cards = num_cards

    @property
    def default_params(self):
        return MemoryParams()

    def _draw(self, key):
        return jax.random.randint(key, (), 0, self.num_cards)

    def _one_hot(self, card):
        return jax.nn.one_hot(card, self.num_cards, dtype=jnp.float32)


class RepeatFirst(_CardTask):
    """obs [num_cards + 1]: the card shown (one-hot), then 1 on the first step; actions: the cards."""

    def _obs(self, state):
        return jnp.concatenate([self._one_hot(state.card), (state.time == 0).astype(jnp.float32)[None]])

    def reset(self, key, params):
        card = self._draw(key)
        state = RepeatFirstState(card, card, jnp.int32(0))
        return self._obs(state), state

    def step(self, key, state, action, params):
        scale = 1.0 / (params.episode_length - 1)
        reward = jnp.where(state.time == 0, 0.0, jnp.where(action == state.first, scale, -scale))
        state = RepeatFirstState(state.first, self._draw(key), state.time + 1)
        terminated = state.time >= params.episode_length
        return self._obs(state), state, reward.astype(jnp.float32), terminated, jnp.bool_(False), {}

    def observation_space(self, params):
        return Box.make(0.0, 1.0, (self.num_cards + 1,))

    def action_space(self, params):
        return Discrete(self.num_cards)


class CountRecall(_CardTask):
    """obs [2 * num_cards]: the card shown, then the query card (one-hot each); actions: counts 0 to L."""

    def _obs(self, state):
        return jnp.concatenate([self._one_hot(state.card), self._one_hot(state.query)])

    def _show(self, key, counts, time):
        card_key, query_key = jax.random.split(key)
        card = self._draw(card_key)
        return CountRecallState(counts + self._one_hot(card).astype(jnp.int32), card, self._draw(query_key), time)

    def reset(self, key, params):
        state = self._show(key, jnp.zeros(self.num_cards, jnp.int32), jnp.int32(0))
        return self._obs(state), state

    def step(self, key, state, action, params):
        scale = 1.0 / params.episode_length
        reward = jnp.where(action == state.counts[state.query], scale, -scale)
        state = self._show(key, state.counts, state.time + 1)
        terminated = state.time >= params.episode_length
        return self._obs(state), state, reward.astype(jnp.float32), terminated, jnp.bool_(False), {}

    def observation_space(self, params):
        return Box.make(0.0, 1.0, (2 * self.num_cards,))

    def action_space(self, params):
        return Discrete(params.episode_length + 1)
