"""The training loop shared by every algorithm: compiled chunks of updates.

An algorithm provides a `Program` (jaxrl.algos.base): `init(key, hparams) -> state` and
`update(state) -> (state, metrics)`, both pure (`base.make_train` makes the whole run one
function). This module turns it into
- `run(...)`: the host loop that calls one compiled chunk of K updates
  repeatedly (same shapes each call, so one compilation), batched over runs,
  handing metrics to a callback between chunks (progress, records, checkpoints).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos.base import Program
from jaxrl.devices import SINGLE, Layout, unbatched


def in_background(fn: Callable, *args) -> Future:
    """`fn(*args)` in a worker thread; `.result()` waits for it and raises what it raised."""
    executor = ThreadPoolExecutor(1)
    try:
        return executor.submit(fn, *args)
    finally:
        executor.shutdown(wait=False)


def all_finite(tree, mask=None) -> jax.Array:
    """True when every floating-point leaf of `tree` (those `mask` marks, if given) is finite."""
    leaves = jax.tree.leaves(tree)
    flags = jax.tree.leaves(mask) if mask is not None else [True] * len(leaves)
    checks = [jnp.all(jnp.isfinite(x)) for x, f in zip(leaves, flags) if f and jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(checks)) if checks else jnp.bool_(True)


def make_chunk(program: Program) -> Callable:
    """`chunk(state, diverged_at, first_update, n_active) -> ((state, diverged_at), metrics [K / log_every])`.

    Runs `n_active` <= K updates (a loop bound, not a shape, so the last partial chunk reuses the
    same compiled program) and aggregates their metrics on the device, `program.log_every` updates
    per row (padding rows are 0). Failure isolation, at chunk granularity so a healthy update pays
    nothing for it: a chunk after which a metric or a guarded state leaf (`program.guarded`) is not
    finite is discarded whole, the run keeps its state from before the chunk and stays frozen there,
    `diverged_at` records the chunk's first update (1-based; -1 while healthy), and the metrics of
    discarded chunks are NaN. Under vmap each run freezes alone.
    """
    every = program.log_every
    rows = program.chunk_capacity // every

    def chunk(state, diverged_at, first_update, n_active):
        shapes = jax.eval_shape(program.traced_update, state)[1]
        dtypes = {k: m.dtype if k in program.summed else jnp.float32 for k, m in shapes.items()}

        def body(i, carry):
            s, acc = carry
            s, m = program.traced_update(s)
            return s, {k: acc[k].at[i // every].add(m[k].astype(dtypes[k])) for k in acc}

        acc = {k: jnp.zeros(rows, d) for k, d in dtypes.items()}
        new, acc = jax.lax.fori_loop(0, n_active, body, (state, acc))
        counts = jnp.clip(n_active - jnp.arange(rows) * every, 0, every)
        metrics = {k: v if k in program.summed else jnp.where(counts > 0, v / jnp.maximum(counts, 1), 0.0)
                   for k, v in acc.items()}
        mask = program.guarded(new) if program.guarded else None
        ok = (diverged_at < 0) & all_finite(metrics) & all_finite(new, mask)
        # A conditional, not a select: a single run's program compiles 1.5-2 s faster (under vmap it is a select).
        state = jax.lax.cond(ok, lambda kept, _: kept, lambda _, before: before, new, state)
        if hasattr(state, "key"):  # the key moves on either way: a frozen run never draws from it again, and
            state = state.replace(key=new.key)  # runs that share one key keep sharing it (`key_pattern`)
        diverged_at = jnp.where((diverged_at < 0) & ~ok, first_update + 1, diverged_at)
        metrics = jax.tree.map(lambda m: jnp.where(ok, m, jnp.nan if jnp.issubdtype(m.dtype, jnp.inexact) else 0),
                               metrics)
        return (state, diverged_at), metrics

    return chunk


@dataclass
class ChunkReport:
    """What the host loop hands to callbacks after each chunk."""

    first_update: int  # index of the chunk's first update
    num_updates: int  # updates done in this chunk
    metrics: dict[str, np.ndarray]  # name -> [num_runs, rows]: one row per Program.log_every updates
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
    metrics: dict[str, np.ndarray]  # name -> [num_runs, logged rows of the `done` updates]
    driver_state: Any = None  # a driver's own state (jaxrl.session.Driver), None without one


# Chunks sized by wall time (Program.updates_per_chunk = 0) take about this long: a live progress display,
# checkpoints and signals need no more often, and a chunk boundary costs the run a few milliseconds.
CHUNK_SECONDS = 1.0


def compiler_options(optimization_level: int) -> dict:
    """XLA options of the compiled programs. `optimization_level`: the chunk's 1 instead of XLA's 2 compiles
    0.2-0.5 s faster with the same run time (PPO/CartPole, 2-core CPU; 0 runs 3x slower); init runs once, at 0.
    On the CPU, Eigen without its intra-op thread pool: the small matrix products of RL networks run faster
    without it (alternated in one process, bitwise-identical results: PPO CartPole 1.11-1.13x, DQN 1.13x, SAC
    and MinAtar conv nets 0.95-1.03x), and vmapped programs have been seen to block forever in that pool's
    wait, every thread idle at 0% CPU (jax 0.10.2, 2-core CPU; single-threaded Eigen is the known workaround)."""
    options = {"xla_backend_optimization_level": optimization_level}
    if jax.default_backend() == "cpu":
        options["xla_cpu_multi_thread_eigen"] = False
    return options


@dataclass(frozen=True)
class Compiled:
    """The vmapped init and chunk of one program for a fixed number of runs, on a device layout."""

    init: Callable  # (keys [R], hparams {name: [R]}) -> state
    chunk: Callable  # (state, diverged_at [R], first_update, n_active) -> ((state, diverged_at), metrics)
    num_runs: int
    seconds: float  # compile time
    layout: Layout = SINGLE
    state_sharding: Any = None  # shardings of the batched state (None on one device)
    key_pattern: KeyPattern | None = None  # how the runs' keys repeat (`key_pattern`; None: a key per run)


def broadcast_hparams(hparams, num_runs: int):
    """One value per run for every leaf of `hparams` (a pytree of numbers): a scalar is repeated, an
    array is per run and must lead with `num_runs`."""

    def one(path, value):
        value = np.asarray(value, np.float32)
        out = np.full(num_runs, value, np.float32) if value.ndim == 0 else value
        if out.shape[:1] != (num_runs,):
            raise ValueError(f"hyperparameter {jax.tree_util.keystr(path)} has shape {out.shape}, expected a "
                             f"leading axis of {num_runs} runs")
        return out

    return jax.tree_util.tree_map_with_path(one, hparams)


def batched_init(program: Program, **jit_kwargs) -> Callable:
    """`init(keys [R], hparams {name: [R]}) -> state` batched over runs.

    Init is cheap; mapping it run by run (not vmapping) makes every run's initial state
    bitwise independent of how many runs share the program (batched matmuls may sum
    in another order), so a sweep lane starts exactly where a single run does.
    """
    return jax.jit(lambda k, hp: jax.lax.map(lambda args: program.traced_init(*args), (k, hp)), **jit_kwargs)


def state_shapes(program: Program, keys: jax.Array, hparams: dict):
    """Shapes and dtypes of the batched runner state and of one update's metrics."""
    state = jax.eval_shape(batched_init(program), keys, broadcast_hparams(hparams, keys.shape[0]))
    return state, jax.eval_shape(program.traced_update, unbatched(state))[1]


def device_memory() -> int:
    """Bytes of memory of this process's first device (physical memory for the CPU)."""
    import os

    stats = jax.local_devices()[0].memory_stats() or {}
    return int(stats.get("bytes_limit") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _nbytes(aval) -> int:
    return math.prod(getattr(aval, "shape", ())) * getattr(getattr(aval, "dtype", None), "itemsize", 0)


# Writes into part of an array: XLA does them in place when nothing reads the array afterwards.
IN_PLACE = frozenset({"scatter", "scatter-add", "dynamic_update_slice"})


def peak_bytes(jaxpr) -> int:
    """Most bytes of arrays alive at once while `jaxpr` runs, its inputs not counted: a walk over its
    equations that frees each array after its last use; a nested jaxpr (scan or loop body, cond branch,
    call) adds its own peak at its equation; an in-place write (`IN_PLACE`) into an array that dies there
    reuses its buffer (a replay buffer's new rows cost nothing). XLA fuses and reuses buffers, yet the buffers
    it compiled for PPO and IPPO/MAPPO updates (CPU; feed-forward, conv and GRU) came within 20% of this."""
    from jax.extend import core

    last_use = {v: i for i, eqn in enumerate(jaxpr.eqns) for v in eqn.invars if isinstance(v, core.Var)}
    last_use |= {v: len(jaxpr.eqns) for v in jaxpr.outvars if isinstance(v, core.Var)}
    alive, live, peak = {}, 0, 0
    for i, eqn in enumerate(jaxpr.eqns):
        inner = max((peak_bytes(sub) for sub in core.jaxprs_in_params(eqn.params)), default=0)
        outs = {v: _nbytes(v.aval) for v in eqn.outvars if not isinstance(v, core.DropVar)}
        target = eqn.invars[0] if eqn.primitive.name in IN_PLACE else None
        if isinstance(target, core.Var) and last_use.get(target) == i:
            reused = alive.pop(target, 0)  # an input's buffer is not counted, nor is its reuse
            live -= reused
            outs[eqn.outvars[0]] = reused
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
    state, _ = state_shapes(program, keys, hparams)
    update = jax.make_jaxpr(program.traced_update)(unbatched(state)).jaxpr
    # The body of the jit around `update`, walked so that its in-place writes into the state are seen.
    body = update.eqns[0].params["jaxpr"].jaxpr if len(update.eqns) == 1 and "jaxpr" in update.eqns[0].params \
        else update
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)), keys.shape[0] * peak_bytes(body)


def check_memory(program: Program, keys: jax.Array, hparams: dict, num_devices: int = 1) -> None:
    """Refuse, before compiling, a run that cannot fit: a chunk holds its state twice (its input and the
    state it keeps) besides all that one update allocates (see `memory_estimate`). The error names the
    largest parts of the state, and the config fields that size them (`Program.sized_by`)."""
    from jaxrl.errors import JaxrlError

    state, update = (b / num_devices for b in memory_estimate(program, keys, hparams))
    need = 2 * state + update
    have = device_memory()
    if need > 0.9 * have:
        parts = state_parts(program, keys, hparams)
        total = sum(parts.values())
        largest = [name for name in sorted(parts, key=parts.get, reverse=True)[:3] if parts[name] >= 0.1 * total]
        named = ", ".join(f"{name} {parts[name] / num_devices / 1e9:.1f} GB" for name in largest)
        fields = [program.sized_by[name] for name in largest if name in program.sized_by]
        raise JaxrlError(f"this run needs about {need / 1e9:.1f} GB per device ({2 * state / 1e9:.1f} GB for its "
                         f"state held twice, largest parts {named}; {update / 1e9:.1f} GB for one update: rollout, "
                         f"minibatches, activations, gradients) but a device has {have / 1e9:.1f} GB: lower "
                         f"{', '.join(fields + ['num_envs', 'num_steps', 'num_seeds'])}, the population size or the "
                         f"network size")


def state_parts(program: Program, keys: jax.Array, hparams: dict) -> dict[str, int]:
    """Bytes of each top-level field of the runner state, all runs together."""
    state, _ = state_shapes(program, keys, hparams)
    parts: dict[str, int] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = jax.tree_util.keystr(path[:1]).lstrip(".")
        parts[name] = parts.get(name, 0) + _nbytes(leaf)
    return parts


class KeyPattern(NamedTuple):
    """Runs whose PRNG keys (the state's `key` field) are `distinct` keys, each repeated: in turn (run i has key
    i % distinct: a sweep's points on one or several seeds) or, `blocked`, in a row (runs on one key next to each
    other: a meta-learning population on shared seeds)."""

    distinct: int
    blocked: bool

    def distinct_keys(self, keys):
        return keys[::len(keys) // self.distinct] if self.blocked else keys[:self.distinct]

    def expand(self, distinct_keys, runs: int, xp=jnp):
        """The runs' keys [runs, ...] from the distinct ones."""
        reps = runs // self.distinct
        return xp.repeat(distinct_keys, reps, axis=0) if self.blocked else xp.tile(distinct_keys, (reps, 1))

    def matches(self, keys) -> bool:
        keys = np.asarray(keys)
        return len(keys) % self.distinct == 0 and np.array_equal(
            self.expand(self.distinct_keys(keys), len(keys), np), keys)


def key_pattern(state_shape, keys, layout: Layout) -> KeyPattern | None:
    """How the runs' keys repeat, if they do (`KeyPattern`), on one device. Runs on one key draw the same random
    numbers, so their chunk takes each key once and computes splits, samples and shuffles once per key, not per
    run (`vmap_sharing_key`; bitwise the same results). PPO on CartPole at Rejax's config, 16 learning rates on
    one seed, 2-core CPU: compile 6.8 -> 5.0 s, run 7.5 -> 5.7 s."""
    keys = np.asarray(keys)
    runs = len(keys)
    if runs < 2 or layout.mesh is not None or getattr(state_shape, "key", None) is None:
        return None
    patterns = (KeyPattern(b, blocked) for b in range(1, runs // 2 + 1) if runs % b == 0 for blocked in (False, True))
    return next((pattern for pattern in patterns if pattern.matches(keys)), None)


def vmap_sharing_key(chunk: Callable, pattern: KeyPattern) -> Callable:
    """`chunk` vmapped over runs whose keys follow `pattern`: the runs are viewed as [runs sharing a key,
    distinct keys] (or the other way round, `blocked`), one axis vmapped with the keys and the other without
    them; the keys leave expanded again, so the state keeps its layout (checkpoints, drivers). Raises ValueError
    when tracing if the program makes its key depend on more than the key (then each run needs its own)."""

    def batched(state, diverged_at, first_update, n_active):
        runs, distinct = diverged_at.shape[0], pattern.distinct
        sharing = runs // distinct
        keys = pattern.distinct_keys(state.key)

        def one(rest, diverged, key):
            (new, diverged), metrics = chunk(rest.replace(key=key), diverged, first_update, n_active)
            return (new.replace(key=None), diverged), metrics, new.key

        if pattern.blocked:  # [distinct, sharing]: the outer axis carries the keys
            split = lambda x: x.reshape(distinct, sharing, *x.shape[1:])
            group = lambda rest, diverged, key: jax.vmap(lambda r, d: one(r, d, key), out_axes=((0, 0), 0, None))(
                rest, diverged)
            out = jax.vmap(group)(jax.tree.map(split, state.replace(key=None)), split(diverged_at), keys)
        else:  # [sharing, distinct]: the inner axis carries the keys
            split = lambda x: x.reshape(sharing, distinct, *x.shape[1:])

            def group(rest, diverged):
                if distinct == 1:  # no vmap of one
                    return jax.tree.map(lambda x: x[None], one(*jax.tree.map(lambda x: x[0], (rest, diverged)),
                                                               keys[0]))
                return jax.vmap(one)(rest, diverged, keys)

            out = jax.vmap(group, out_axes=((0, 0), 0, None))(jax.tree.map(split, state.replace(key=None)),
                                                               split(diverged_at))
        (new, diverged_at), metrics, new_keys = out
        merge = lambda x: x.reshape(runs, *x.shape[2:])
        new, diverged_at, metrics = jax.tree.map(merge, (new, diverged_at, metrics))
        return (new.replace(key=pattern.expand(new_keys, runs)), diverged_at), metrics

    return batched


def compile_program(program: Program, keys: jax.Array, hparams: dict, layout: Layout = SINGLE,
                    share_keys: bool = True, while_compiling: Callable | None = None) -> Compiled:
    """AOT-compile the init and chunk, batched over runs (keys and hyperparameters), for `layout`.
    A single run on one device is compiled without a run axis (a vmap of one costs time); runs whose keys
    repeat take each key once (`key_pattern`) unless `share_keys` is off. `while_compiling()` runs on a worker
    thread once the chunk is traced, while XLA compiles it without the GIL (started earlier, host work such as
    imports would hold the GIL against the tracing: a 16-run sweep's chunk traced in 1.3 s instead of 0.4 s)."""
    start = time.perf_counter()
    num_runs = keys.shape[0]
    state_shape, metric_shapes = state_shapes(program, keys, hparams)
    program.check_metrics(metric_shapes)
    hparams = broadcast_hparams(hparams, num_runs)
    state_sharding = layout.state(state_shape, program.env_axes)
    shardings = {}
    if layout.mesh is not None:
        hp_sharding = jax.tree.map(lambda _: layout.per_run, hparams)
        shardings = dict(init=dict(in_shardings=(layout.per_run, hp_sharding), out_shardings=state_sharding),
                         chunk=dict(in_shardings=(state_sharding, layout.per_run, layout.replicated, layout.replicated),
                                    out_shardings=((state_sharding, layout.per_run), layout.replicated)))
    vinit = batched_init(program, **shardings.get("init", {}))
    init_lowered = vinit.lower(jax.ShapeDtypeStruct(keys.shape, keys.dtype), hparams)
    # XLA compiles without the GIL: init compiles on another thread while the chunk compiles here.
    init = in_background(init_lowered.compile, compiler_options(0))
    diverged_shape = jax.ShapeDtypeStruct((num_runs,), jnp.int32)
    chunk = make_chunk(program)
    if num_runs == 1 and layout.mesh is None:
        def batched(state, diverged_at, first_update, n_active):
            (state, diverged_at), metrics = chunk(jax.tree.map(lambda x: x[0], state), diverged_at[0],
                                                  first_update, n_active)
            return jax.tree.map(lambda x: x[None], ((state, diverged_at), metrics))
    else:
        batched = jax.vmap(chunk, in_axes=(0, 0, None, None))
    args = (state_shape, diverged_shape, jnp.int32(0), jnp.int32(0))
    lowered = None
    if pattern := (key_pattern(state_shape, keys, layout) if share_keys else None):
        try:
            lowered = jax.jit(vmap_sharing_key(chunk, pattern), donate_argnums=(0, 1)).lower(*args)
        except ValueError:  # the program's key depends on the run: one key per run
            lowered, pattern = None, None
    if lowered is None:
        lowered = jax.jit(batched, donate_argnums=(0, 1), **shardings.get("chunk", {})).lower(*args)
    if while_compiling:
        in_background(while_compiling)
    chunk = lowered.compile(compiler_options(1))
    return Compiled(init.result(), chunk, num_runs, time.perf_counter() - start, layout, state_sharding, pattern)


def run(
    program: Program,
    keys: jax.Array,
    hparams: dict,
    on_chunk: Callable[[ChunkReport], None] | None = None,
    compiled: Compiled | None = None,
    between_chunks: Callable | None = None,
    start: Start | None = None,
    layout: Layout = SINGLE,
):
    """Run `program` once per key in `keys` [num_runs, 2]; returns (state, metrics, diverged_at, timings).

    `hparams` maps each dynamic hyperparameter to a scalar (all runs) or one value
    per run. `compiled` reuses an earlier compilation for the same number of runs.
    `between_chunks(state, diverged_at, metrics, chunk_index) -> (state, diverged_at)` (chunk_index counted from
    the run's first update, a resumed run included)
    runs on the device after each chunk (population-based training). `start`
    continues a run from a checkpoint (its state placed by `compiled.layout`) instead of
    initialising it. `layout` places the runs on devices (jaxrl.devices).
    """
    if compiled is None:
        compiled = compile_program(program, keys, hparams, layout)
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
    if compiled.key_pattern and not compiled.key_pattern.matches(layout.to_host(state.key)):
        # Compiled for runs whose keys repeat (`key_pattern`), but these runs' keys do not (other runs, or an
        # init that derives the key from more than the run's key): one key per run, compiled again.
        compiled = compile_program(program, keys, hparams, layout, share_keys=False)
        clock = time.perf_counter()
    every, capacity = program.log_every, program.chunk_capacity
    if not program.updates_per_chunk:  # sized by wall time: start small, measure, grow; a tenth of the run at most
        capacity = min(capacity, -(-program.num_updates // 10 // every) * every or every)
    size = capacity if program.updates_per_chunk else every
    while done < program.num_updates:
        n = min(size, program.num_updates - done)
        chunk_start = time.perf_counter()
        scalars = layout.put((np.int32(done), np.int32(n)), (layout.replicated,) * 2)
        (state, diverged_at), metrics = compiled.chunk(state, diverged_at, *scalars)
        if between_chunks:
            state, diverged_at = between_chunks(state, diverged_at, metrics, done // program.updates_per_chunk)
            if layout.mesh is not None:  # back to the layout the compiled chunk expects
                state, diverged_at = jax.device_put((state, diverged_at), (compiled.state_sharding, layout.per_run))
        metrics = {k: np.asarray(v)[:, :-(-n // every)] for k, v in metrics.items()}  # syncs
        if not program.updates_per_chunk:
            per_update = (time.perf_counter() - chunk_start) / n
            size = int(min(4 * size, CHUNK_SECONDS / per_update, capacity)) // every * every or every
        history.append(metrics)
        report = ChunkReport(done, n, metrics, (done + n) * program.steps_per_update, time.perf_counter() - clock,
                             state, layout.to_host(diverged_at), history)
        done += n
        if on_chunk:
            on_chunk(report)
    run_s = time.perf_counter() - clock
    metrics = {k: np.concatenate([h[k] for h in history], axis=1) for k in history[0]}
    return state, metrics, layout.to_host(diverged_at), {"compile_s": compiled.seconds, "run_s": run_s}


def logged_updates(program: Program) -> np.ndarray:
    """The update each logged metrics row ends at (every `log_every` updates, and the last)."""
    rows = -(-program.num_updates // program.log_every)
    return np.minimum((np.arange(rows) + 1) * program.log_every, program.num_updates)
