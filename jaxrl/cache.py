"""JAX's persistent compilation cache, on by default for the `jaxrl` command.

Directory: $JAXRL_CACHE_DIR, else $XDG_CACHE_HOME/jaxrl/jax, else ~/.cache/jaxrl/jax.
Turn it off with JAXRL_COMPILE_CACHE=0 or `jaxrl train --no-compile-cache`.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    if os.environ.get("JAXRL_CACHE_DIR"):
        return Path(os.environ["JAXRL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxrl" / "jax"


def enabled_by_env() -> bool:
    return os.environ.get("JAXRL_COMPILE_CACHE", "1").lower() not in ("0", "false", "no", "off")


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Point JAX's persistent cache at `path` (default `cache_dir()`); None if it cannot be created."""
    import jax

    path = Path(path) if path else cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
