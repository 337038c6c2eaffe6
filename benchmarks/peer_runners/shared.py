"""What the peer runners share: the gymnax 1.x step adapter, episode statistics kept in the env state, the
timing, the final return, the JSON line.

Runs in the peers' venv (benchmarks/peers_setup.sh), which has no jaxrl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

# Added by gymnax 1.x's step; code written for gymnax 0.0.x never sees them.
GYMNAX1_INFO = ("terminated", "truncated", "final_observation")


class FiveValueStep:
    """A gymnax 1.x env with gymnax 0.0.x's step: (obs, state, reward, done, info), done = terminated or
    truncated, as the peers' code expects; everything else is the wrapped env's."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        if name == "_env":  # not set yet: an instance being copied (Rejax deep-copies its config)
            raise AttributeError(name)
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {k: v for k, v in info.items() if k not in GYMNAX1_INFO}
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


@struct.dataclass
class StatsState:
    env_state: object
    steps: jax.Array  # steps taken by this env
    episode_return: jax.Array  # of the episode under way
    window_return: jax.Array  # summed over the episodes finished from step window_start on
    window_episodes: jax.Array


class EpisodeStats(FiveValueStep):
    """FiveValueStep that also counts, in its state, the episodes finished from the env's step `window_start`
    on and their returns: the final return of a peer whose own metrics do not give it (`window_returns`)."""

    def __init__(self, env, window_start: int):
        super().__init__(env)
        self.window_start = window_start

    def reset(self, key, params=None):
        obs, state = self._env.reset(key, params)
        zero = jnp.zeros((), jnp.float32)
        return obs, StatsState(state, jnp.zeros((), jnp.int32), zero, zero, zero)

    def step(self, key, state, action, params=None):
        obs, inner, reward, done, info = super().step(key, state.env_state, action, params)
        episode_return = state.episode_return + reward
        counted = jnp.logical_and(done, state.steps >= self.window_start)
        state = StatsState(inner, state.steps + 1, jnp.where(done, 0.0, episode_return),
                           state.window_return + jnp.where(counted, episode_return, 0.0),
                           state.window_episodes + counted)
        return obs, state, reward, done, info


def stats_log_wrapper(window_start: int):
    """A stand-in for gymnax's LogWrapper in a peer written for gymnax 0.0.x: gymnax's own, given the 5-value
    step and EpisodeStats' counts (in the outermost env state)."""
    from gymnax.wrappers.purerl import LogWrapper  # here: the runners of peers without gymnax do not import it

    return lambda env: EpisodeStats(LogWrapper(env), window_start)


def window_returns(stats: StatsState, runs: int) -> np.ndarray:
    """Per run: the mean return of the episodes its envs finished in the window (stats of all its envs)."""
    episodes = stats.window_episodes.reshape(runs, -1).sum(1)
    return np.asarray(stats.window_return.reshape(runs, -1).sum(1) / episodes)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--repo", type=Path, help="the peer's checkout (from benchmarks/peers_setup.sh)")
    p.add_argument("--config", type=json.loads, required=True, help="the peer's config, JSON, in its own keys")
    p.add_argument("--seeds", type=int, default=1, help="seeds vmapped in one program (1: no vmap)")
    return p


def import_from(directory: Path) -> None:
    """Make the peer's own modules importable as it imports them itself (flat names from its directory)."""
    if not directory.is_dir():
        sys.exit(f"{directory} not found: run benchmarks/peers_setup.sh first")
    sys.path.insert(0, str(directory))


def compile_and_run(fn, *args):
    """(output, compile s, run s): ahead-of-time compilation, then one call waited for."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, compile_s, time.perf_counter() - start


def run_seeds(make_train, config: dict, seeds: int):
    """A peer's `make_train(config)` run for `seeds` seeds (vmapped when more than one): (out, compile s, run s)."""
    train = make_train(config)
    if seeds == 1:
        return compile_and_run(train, jax.random.PRNGKey(0))
    return compile_and_run(jax.vmap(train), jax.random.split(jax.random.PRNGKey(0), seeds))


def window_updates(num_updates: int) -> int:
    """Updates at the end of a run whose finished episodes make the final return (jaxrl's: the last 5%)."""
    return max(1, int(round(num_updates * 0.05)))


def final_return(episodes, return_sum) -> float:
    """Mean over runs of the mean return of the episodes finished in the last 5% of updates.
    episodes, return_sum: [runs, updates] counts and return sums of finished episodes."""
    n = window_updates(episodes.shape[1])
    per_run = np.asarray(return_sum)[:, -n:].sum(1) / np.asarray(episodes)[:, -n:].sum(1)
    return float(per_run.mean())


def emit(env_steps: int, compile_s: float, run_s: float, final: float, final_kind: str, **extra) -> None:
    print(json.dumps({"compile_s": compile_s, "run_s": run_s, "env_steps": env_steps,
                      "steps_per_second": env_steps / run_s, "final_return": final,
                      "final_return_kind": final_kind, **extra}))
