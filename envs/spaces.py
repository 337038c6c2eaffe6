"""Observation and action spaces shared by every environment source."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Discrete:
    """Actions 0..n-1."""

    n: int
    dtype: str = "int32"

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x) -> jax.Array:
        return jnp.logical_and(x >= 0, x < self.n)


@dataclass(frozen=True)
class Box:
    """Real-valued array with elementwise bounds (inf where unbounded)."""

    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def make(cls, low, high, shape, dtype="float32") -> "Box":
        shape = tuple(int(s) for s in shape)
        low = np.broadcast_to(np.asarray(low, dtype=np.float32), shape).copy()
        high = np.broadcast_to(np.asarray(high, dtype=np.float32), shape).copy()
        return cls(low, high, shape, str(np.dtype(dtype)))

    @property
    def bounded(self) -> bool:
        return bool(np.all(np.isfinite(self.low)) and np.all(np.isfinite(self.high)))

    def sample(self, key: jax.Array) -> jax.Array:
        low = jnp.where(jnp.isfinite(self.low), self.low, -1.0)
        high = jnp.where(jnp.isfinite(self.high), self.high, 1.0)
        return jax.random.uniform(key, self.shape, minval=low, maxval=high).astype(self.dtype)

    def contains(self, x) -> jax.Array:
        return jnp.all(jnp.logical_and(x >= self.low, x <= self.high))

    def __hash__(self):  # frozen dataclass with arrays: hash by value summary
        return hash((self.shape, self.dtype, self.low.tobytes(), self.high.tobytes()))

    def __eq__(self, other):
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )


Space = Discrete | Box


def flat_dim(space: Space) -> int:
    """Size of the flattened observation or action."""
    return int(np.prod(space.shape)) if space.shape else 1
