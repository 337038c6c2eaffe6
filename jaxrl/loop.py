"""The training loop shared by every algorithm: compiled chunks of updates.

An algorithm provides a `Program`: `init(key, hparams) -> state` and
`update(state) -> (state, metrics)`, both pure. This module turns it into
- `train(key)`: the whole run as one program (scan over all updates), and
- `run(...)`: the host loop that calls one compiled chunk of K updates
  repeatedly (same shapes each call, so one compilation), vmapped over seeds,
  handing metrics to a callback between chunks (progress, records, checkpoints).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.devices import SINGLE, Layout


@dataclass(frozen=True)
class Program:
    init: Callable[[jax.Array, dict], Any]  # (key, hparams) -> state
    update: Callable[[Any], tuple[Any, dict]]  # state -> (state, metrics of scalars)
    num_updates: int  # updates in the whole run
    steps_per_update: int  # env steps per update (all envs)
    updates_per_chunk: int  # K: updates per compiled chunk
    # Data parallelism (jaxrl.devices): which leaves of one run's state have a leading env axis
    # (state -> pytree of bools), and the device counts that axis splits over (any divisor of it; 0: none).
    per_env: Callable[[Any], Any] | None = None
    env_shards: int = 0


def make_train(program: Program, hparams: dict) -> Callable:
    """`train(key) -> (state, metrics [num_updates])`: the whole run, vmappable over keys."""

    def train(key):
        state = program.init(key, hparams)
        return jax.lax.scan(lambda s, _: program.update(s), state, None, program.num_updates)

    return train


def all_finite(tree) -> jax.Array:
    """True when every floating-point leaf of `tree` is finite (no NaN/inf)."""
    checks = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def make_chunk(program: Program) -> Callable:
    """`chunk(state, diverged_at, first_update, n_active) -> ((state, diverged_at), metrics [K])`.

    Updates i >= n_active are skipped; `n_active` is not batched over runs, so the
    skip is a real branch and the last partial chunk reuses the same compiled
    program. Failure isolation: an update that leaves a non-finite number in the
    state or its metrics is discarded, the run's state freezes from then on, and
    `diverged_at` records that update (1-based; -1 while healthy). Metrics of
    discarded updates are NaN. Under vmap each run freezes alone.
    """

    def chunk(state, diverged_at, first_update, n_active):
        metric_shapes = jax.eval_shape(program.update, state)[1]

        def skip(carry, i):
            return carry, jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metric_shapes)

        def step(carry, i):
            s, div = carry
            new, metrics = program.update(s)
            ok = (div < 0) & all_finite(new) & all_finite(metrics)
            s = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, s)
            div = jnp.where((div < 0) & ~ok, first_update + i + 1, div)
            metrics = jax.tree.map(lambda m: jnp.where(ok, m, jnp.nan if jnp.issubdtype(m.dtype, jnp.inexact) else 0),
                                   metrics)
            return (s, div), metrics

        def body(carry, i):
            return jax.lax.cond(i < n_active, step, skip, carry, i)

        return jax.lax.scan(body, (state, diverged_at), jnp.arange(program.updates_per_chunk))

    return chunk


@dataclass
class ChunkReport:
    """What the host loop hands to callbacks after each chunk."""

    first_update: int  # index of the chunk's first update
    num_updates: int  # updates done in this chunk
    metrics: dict[str, np.ndarray]  # name -> [num_runs, num_updates]
    env_steps: int  # total env steps so far, per run
    run_seconds: float  # wall time of the compiled chunks so far
    state: Any  # runner state after the chunk (batched over runs)
    diverged_at: np.ndarray  # [num_runs] update at which each run diverged, -1 if it did not
    history: list  # metrics of every chunk so far, this one included (for checkpoints)

    @property
    def done(self) -> int:
        """Updates done after this chunk."""
        return self.first_update + self.num_updates


@dataclass
class Start:
    """Where a resumed run continues: the loop state after `done` updates."""

    state: Any  # runner state, batched over runs (host arrays: `run` places them on the devices)
    diverged_at: np.ndarray  # [num_runs]
    done: int
    metrics: dict[str, np.ndarray]  # name -> [num_runs, done]


# XLA's backend optimisation level 1 instead of 2: measured on PPO/CartPole on a
# 2-core CPU, it compiles 0.2-0.5 s faster with the same run time (level 0 runs 3x slower).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@dataclass(frozen=True)
class Compiled:
    """The vmapped init and chunk of one program for a fixed number of runs, on a device layout."""

    init: Callable  # (keys [R], hparams {name: [R]}) -> state
    chunk: Callable  # (state, diverged_at [R], first_update, n_active) -> ((state, diverged_at), metrics)
    num_runs: int
    seconds: float  # compile time
    layout: Layout = SINGLE
    state_sharding: Any = None  # shardings of the batched state (None on one device)


def broadcast_hparams(hparams: dict, num_runs: int) -> dict[str, np.ndarray]:
    """One value per run for every dynamic hyperparameter (scalars are repeated)."""
    out = {}
    for name, value in hparams.items():
        value = np.asarray(value, np.float32)
        out[name] = np.full(num_runs, value, np.float32) if value.ndim == 0 else value
        if out[name].shape != (num_runs,):
            raise ValueError(f"hyperparameter {name!r} has shape {out[name].shape}, expected ({num_runs},)")
    return out


def batched_init(program: Program, **jit_kwargs) -> Callable:
    """`init(keys [R], hparams {name: [R]}) -> state` batched over runs.

    Init is cheap; mapping it run by run (not vmapping) makes every run's initial state
    bitwise independent of how many runs share the program (batched matmuls may sum
    in another order), so a sweep lane starts exactly where a single run does.
    """
    return jax.jit(lambda k, hp: jax.lax.map(lambda args: program.init(*args), (k, hp)), **jit_kwargs)


def state_shapes(program: Program, keys: jax.Array, hparams: dict):
    """Shapes and dtypes of the batched runner state and of one update's metrics."""
    state = jax.eval_shape(batched_init(program), keys, broadcast_hparams(hparams, keys.shape[0]))
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state)
    return state, jax.eval_shape(program.update, one)[1]


def device_memory() -> int:
    """Bytes of memory of this process's first device (physical memory for the CPU)."""
    import os

    stats = jax.local_devices()[0].memory_stats() or {}
    return int(stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _nbytes(aval) -> int:
    return math.prod(getattr(aval, "shape", ())) * getattr(getattr(aval, "dtype", None), "itemsize", 0)


def peak_bytes(jaxpr) -> int:
    """Most bytes of arrays alive at once while `jaxpr` runs, its inputs not counted: a walk over its
    equations that frees each array after its last use; a nested jaxpr (scan or loop body, cond branch,
    call) adds its own peak at its equation. XLA fuses and reuses buffers, yet the buffers it compiled
    for PPO and IPPO/MAPPO updates (CPU; feed-forward, conv and GRU) came within 20% of this."""
    from jax.extend import core

    last_use = {v: i for i, eqn in enumerate(jaxpr.eqns) for v in eqn.invars if isinstance(v, core.Var)}
    last_use |= {v: len(jaxpr.eqns) for v in jaxpr.outvars if isinstance(v, core.Var)}
    alive, live, peak = {}, 0, 0
    for i, eqn in enumerate(jaxpr.eqns):
        inner = max((peak_bytes(sub) for sub in core.jaxprs_in_params(eqn.params)), default=0)
        outs = {v: _nbytes(v.aval) for v in eqn.outvars if not isinstance(v, core.DropVar)}
        peak = max(peak, live + inner + sum(outs.values()))
        for v, n in outs.items():
            if v in last_use:
                alive[v] = n
                live += n
        for v in eqn.invars:
            if isinstance(v, core.Var) and last_use.get(v) == i and v in alive:
                live -= alive.pop(v)
    return peak


def memory_estimate(program: Program, keys: jax.Array, hparams: dict) -> tuple[int, int]:
    """Bytes of (the runner state of all runs, what one update of all runs allocates: its rollout,
    advantages, shuffled minibatch copies, activations, gradients and the new state)."""
    num_runs = keys.shape[0]
    state = jax.eval_shape(batched_init(program), keys, broadcast_hparams(hparams, num_runs))
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state)
    update = jax.make_jaxpr(program.update)(one)
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)), num_runs * peak_bytes(update.jaxpr)


def check_memory(program: Program, keys: jax.Array, hparams: dict, num_devices: int = 1) -> None:
    """Refuse, before compiling, a run that cannot fit: a chunk holds its state twice (its input and the
    state it keeps) besides all that one update allocates (see `memory_estimate`)."""
    from jaxrl.errors import JaxrlError

    state, update = (b / num_devices for b in memory_estimate(program, keys, hparams))
    need = 2 * state + update
    have = device_memory()
    if need > 0.9 * have:
        raise JaxrlError(f"this run needs about {need / 1e9:.1f} GB per device ({2 * state / 1e9:.1f} GB for its "
                         f"state held twice: parameters, optimiser, envs, snapshots; {update / 1e9:.1f} GB for one "
                         f"update: rollout, minibatches, activations, gradients) but a device has "
                         f"{have / 1e9:.1f} GB: lower num_envs, num_steps, num_seeds, the population size or the "
                         f"network size")


def compile_program(program: Program, keys: jax.Array, hparams: dict, layout: Layout = SINGLE) -> Compiled:
    """AOT-compile the init and chunk, vmapped over runs (keys and hyperparameters), for `layout`."""
    start = time.perf_counter()
    num_runs = keys.shape[0]
    hparams = broadcast_hparams(hparams, num_runs)
    state_shape = jax.eval_shape(batched_init(program), keys, hparams)
    state_sharding = layout.state(state_shape, program.per_env)
    shardings = {}
    if layout.mesh is not None:
        hp_sharding = {k: layout.per_run for k in hparams}
        shardings = dict(init=dict(in_shardings=(layout.per_run, hp_sharding), out_shardings=state_sharding),
                         chunk=dict(in_shardings=(state_sharding, layout.per_run, layout.replicated, layout.replicated),
                                    out_shardings=((state_sharding, layout.per_run), layout.replicated)))
    vinit = batched_init(program, **shardings.get("init", {}))
    init = vinit.lower(jax.ShapeDtypeStruct(keys.shape, keys.dtype), hparams).compile(COMPILER_OPTIONS)
    diverged_shape = jax.ShapeDtypeStruct((num_runs,), jnp.int32)
    vchunk = jax.jit(jax.vmap(make_chunk(program), in_axes=(0, 0, None, None)), donate_argnums=(0, 1),
                     **shardings.get("chunk", {}))
    chunk = vchunk.lower(state_shape, diverged_shape, jnp.int32(0), jnp.int32(0)).compile(COMPILER_OPTIONS)
    return Compiled(init, chunk, num_runs, time.perf_counter() - start, layout, state_sharding)


def run(
    program: Program,
    keys: jax.Array,
    hparams: dict,
    on_compiled: Callable[[float], None] | None = None,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    compiled: Compiled | None = None,
    between_chunks: Callable | None = None,
    start: Start | None = None,
    layout: Layout = SINGLE,
):
    """Run `program` once per key in `keys` [num_runs, 2]; returns (state, metrics, diverged_at, timings).

    `hparams` maps each dynamic hyperparameter to a scalar (all runs) or one value
    per run. `compiled` reuses an earlier compilation for the same number of runs.
    `between_chunks(state, diverged_at, metrics, chunk_index) -> (state, diverged_at)`
    runs on the device after each chunk (population-based training). `start`
    continues a run from a checkpoint (its state placed by `compiled.layout`) instead of
    initialising it. `layout` places the runs on devices (jaxrl.devices).
    """
    if compiled is None:
        compiled = compile_program(program, keys, hparams, layout)
        if on_compiled:
            on_compiled(compiled.seconds)
    layout = compiled.layout
    clock = time.perf_counter()
    if start is None:
        state = compiled.init(layout.put(np.asarray(keys)), layout.put(broadcast_hparams(hparams, keys.shape[0])))
        state = jax.block_until_ready(state)
        diverged_at = layout.put(np.full(keys.shape[0], -1, np.int32))
        done, history = 0, []
    else:
        state = layout.put(start.state, compiled.state_sharding)
        diverged_at, done = layout.put(np.asarray(start.diverged_at, np.int32)), start.done
        history = [start.metrics] if done else []
    index = 0
    while done < program.num_updates:
        n = min(program.updates_per_chunk, program.num_updates - done)
        scalars = layout.put((np.int32(done), np.int32(n)), (layout.replicated,) * 2)
        (state, diverged_at), metrics = compiled.chunk(state, diverged_at, *scalars)
        if between_chunks:
            state, diverged_at = between_chunks(state, diverged_at, metrics, index)
            if layout.mesh is not None:  # back to the layout the compiled chunk expects
                state, diverged_at = jax.device_put((state, diverged_at), (compiled.state_sharding, layout.per_run))
        metrics = {k: np.asarray(v)[:, :n] for k, v in metrics.items()}  # syncs with the device
        history.append(metrics)
        report = ChunkReport(done, n, metrics, (done + n) * program.steps_per_update, time.perf_counter() - clock,
                             state, layout.to_host(diverged_at), history)
        done += n
        index += 1
        if on_chunk:
            on_chunk(report)
    run_s = time.perf_counter() - clock
    metrics = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]}
    return state, metrics, layout.to_host(diverged_at), {"compile_s": compiled.seconds, "run_s": run_s}


def auto_chunk(num_updates: int, target_chunks: int = 25) -> int:
    """Updates per chunk giving about `target_chunks` progress updates."""
    return max(1, -(-num_updates // target_chunks))
