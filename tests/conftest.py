import os

import numpy as np
import pytest

# Tests run on the CPU with a private compilation cache, so they neither touch
# nor depend on the user's cache.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One cache for the whole suite: the pytest-xdist workers and the `jaxrl` subprocesses of the tests share it, so
# a program compiles once per suite wherever it is first needed. JAX writes an entry once; an entry read while
# another process still writes it fails to load with a warning, and is compiled again.
os.environ.setdefault("JAXRL_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))


@pytest.fixture
def random_episodes():
    """Random [T=37, N=5] rewards, values, next values and episode ends, in this order, each kind present: `terminated`
    (no bootstrap) and `truncated` (time limit: bootstrap), never both; for return targets against a reference."""
    rng = np.random.default_rng(0)
    shape = (37, 5)
    data = {"rewards": rng.normal(size=shape), "values": rng.normal(size=shape), "next_values": rng.normal(size=shape)}
    data["terminated"] = rng.random(shape) < 0.1
    data["truncated"] = (rng.random(shape) < 0.1) & ~data["terminated"]
    assert data["terminated"].any() and data["truncated"].any()
    return data
