import os

# Tests run on the CPU with a private compilation cache, so they neither touch
# nor depend on the user's cache.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One cache for the whole suite: the pytest-xdist workers and the `jaxrl` subprocesses of the tests share it, so
# a program compiles once per suite wherever it is first needed. JAX writes an entry once; an entry read while
# another process still writes it fails to load with a warning, and is compiled again.
os.environ.setdefault("JAXRL_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
