"""Where a program runs: one device, several local devices, or devices of several processes (hosts).

A `Layout` places the batched runner state on a 1-D mesh with jax.sharding and lets the
compiler partition the program:
- `runs`: the leading run axis (seeds, sweep points) is split over the devices; runs never
  communicate, so each device trains its own runs;
- `envs`: every run's environments are split over the devices (data parallel). Parameters are
  replicated; the rollout and the per-sample losses run where their envs live, and since each
  loss is a mean over all envs the compiler all-reduces the gradients. Same minibatches as one
  device (see ppo.minibatches), so the same results up to float re-association.
`runs` is chosen when the runs divide over the devices, else `envs`.

Multi-host: `initialize` starts jax.distributed; afterwards the mesh spans every process's
devices, host values enter with `put` (each process supplies its shards) and leave with
`to_host` (gathered on every process). Records are written by process 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxrl.errors import JaxrlError

NO_ENV_AXIS = -1  # a state leaf that is not per environment (Program.env_axes)


def vec_env_axes(state: Any, env: Any, **fields: Any) -> Any:
    """`Program.env_axes` of a runner state with an `env_state` of the vectorised `env` and `obs`
    [num_envs, ...]: axis 0 for their per-env leaves, NO_ENV_AXIS elsewhere; `fields` name the axes of
    other fields (a replay buffer's)."""
    envs_first = jax.tree.map(lambda per_env: 0 if per_env else NO_ENV_AXIS, env.per_env_leaves(state.env_state))
    return jax.tree.map(lambda _: NO_ENV_AXIS, state).replace(env_state=envs_first, obs=0, **fields)

AXIS = "devices"

# Environment variables read when the flags are not given (flags win).
ENV_COORDINATOR = "JAXRL_COORDINATOR"
ENV_NUM_PROCESSES = "JAXRL_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXRL_PROCESS_ID"


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Join a multi-process run (jax.distributed) when a coordinator is given by flag or environment.

    `coordinator="auto"` lets JAX detect the cluster (SLURM, Open MPI, ...). Returns whether
    a distributed runtime was started. Must run before anything touches a device.
    """
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR)
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if not coordinator:
        if num_processes is not None or process_id is not None:
            raise JaxrlError("--num-processes/--process-id need --coordinator HOST:PORT (or JAXRL_COORDINATOR)")
        return False
    if coordinator == "auto":
        kwargs = {}
    else:
        if num_processes is None or process_id is None:
            raise JaxrlError(f"--coordinator {coordinator} needs --num-processes and --process-id "
                             f"(or {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID})")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise JaxrlError(f"--process-id {process_id} must be in 0..{num_processes - 1} "
                             f"(--num-processes {num_processes})")
        kwargs = dict(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    # Collectives between CPU processes (set before the backend starts; GPUs use their own).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(**kwargs)
    except Exception as err:
        raise JaxrlError(f"could not join the distributed run at {coordinator}: {err}") from None
    return True


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise JaxrlError(f"{name}={value!r}: expected an integer") from None


def is_main() -> bool:
    """Whether this process writes records (process 0)."""
    return jax.process_index() == 0


def unbatched(shapes):
    """The shapes of one run's part of a batched pytree (its leading run axis dropped). Weak types are kept, so
    a trace on these shapes is the one the chunk makes (jaxrl.loop traces the update once, not twice)."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype, weak_type=getattr(x, "weak_type", False)),
                        shapes)


@dataclass(frozen=True)
class Layout:
    """How the batched runner state ([num_runs, ...]) sits on the devices."""

    mesh: Mesh | None  # None: one device, no shardings given
    mode: str  # "single", "runs" or "envs"

    @property
    def num_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.size

    def describe(self) -> dict:
        return {"devices": self.num_devices, "device_layout": self.mode, "processes": jax.process_count()}

    def _sharding(self, spec: P) -> NamedSharding | None:
        return None if self.mesh is None else NamedSharding(self.mesh, spec)

    @property
    def replicated(self):
        return self._sharding(P())

    @property
    def per_run(self):
        """Sharding of arrays with a leading run axis that are not per-env (keys, hparams, flags)."""
        return self._sharding(P(AXIS) if self.mode == "runs" else P())

    def state(self, state_shape, env_axes: Callable[[Any], Any] | None):
        """Shardings of the batched runner state; `env_axes(one_run_state)` gives each leaf's env axis
        (`NO_ENV_AXIS`: none), which the "envs" layout splits over the devices."""
        if self.mesh is None:
            return None
        if self.mode == "runs":
            return jax.tree.map(lambda _: self.per_run, state_shape)
        one = unbatched(state_shape)
        return jax.tree.map(lambda _, axis: self._sharding(P() if axis == NO_ENV_AXIS else P(*[None] * (axis + 1), AXIS)),
                            state_shape, env_axes(one))

    def put(self, tree, shardings=None):
        """Host values (the same on every process) onto the devices with `shardings` (default per_run)."""
        if self.mesh is None:
            return jax.tree.map(jax.numpy.asarray, tree)
        if shardings is None:
            shardings = jax.tree.map(lambda _: self.per_run, tree)

        def one(x, sharding):
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

        return jax.tree.map(one, tree, shardings)

    def to_host(self, tree):
        """NumPy copies of (possibly sharded) arrays on every process."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            return multihost_utils.process_allgather(tree, tiled=True)
        return jax.device_get(tree)


SINGLE = Layout(None, "single")


def barrier(name: str) -> None:
    """Wait for every process (no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def share_path(path: Path | None, max_bytes: int = 4096) -> Path:
    """Process 0's `path` on every process (e.g. the run directory it just named)."""
    if jax.process_count() == 1:
        return path
    from jax.experimental import multihost_utils

    data = np.zeros(max_bytes, np.uint8)
    if path is not None:
        raw = str(Path(path).absolute()).encode()
        data[:len(raw)] = np.frombuffer(raw, np.uint8)
    data = np.asarray(multihost_utils.broadcast_one_to_all(data))
    return Path(bytes(data[data > 0]).decode())


def count(devices: int | None) -> int:
    """The number of devices to use (None: all), checked against those that exist."""
    available = jax.devices()
    if devices is None:
        return len(available)
    if devices < 1:
        raise JaxrlError(f"--devices {devices}: must be >= 1")
    if devices > len(available):
        raise JaxrlError(f"--devices {devices}: only {len(available)} {available[0].platform} device(s) available"
                         + (" (on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N)"
                            if available[0].platform == "cpu" else ""))
    if jax.process_count() > 1 and devices != len(available):
        raise JaxrlError(f"--devices {devices}: a run over {jax.process_count()} processes uses all "
                         f"{len(available)} devices")
    return devices


def plan(devices: int | None, num_runs: int, env_shards: int, round_runs: bool = False) -> Layout:
    """The layout for `num_runs` runs on `devices` devices (None: all of them).

    `env_shards`: the env axis of one run splits over any device count dividing it (0: it cannot).
    `round_runs`: the caller pads the runs to a multiple of the devices (sweep blocks), so the
    run axis is split whenever there are at least as many runs as devices.
    """
    devices = count(devices)
    if devices == 1:
        return SINGLE
    mesh = Mesh(np.array(jax.devices()[:devices]), (AXIS,))
    if num_runs % devices == 0 or (round_runs and num_runs >= devices):
        return Layout(mesh, "runs")
    if env_shards and env_shards % devices == 0:
        return Layout(mesh, "envs")
    if round_runs:
        return Layout(mesh, "runs")
    envs = f"the environments of a run split only over divisors of {env_shards}" if env_shards else \
        "this algorithm's environments do not split"
    raise JaxrlError(f"cannot split over {devices} devices: {num_runs} run(s) do not divide over them and {envs} "
                     "(use --devices with a divisor, more seeds, or more envs)")
