import os

# Tests run on the CPU with a private compilation cache, so they neither touch
# nor depend on the user's cache.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One cache per pytest-xdist worker: parallel workers never write one cache at once.
os.environ.setdefault("JAXRL_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax",
                                                      os.environ.get("PYTEST_XDIST_WORKER", "main")))
