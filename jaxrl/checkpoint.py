"""Orbax checkpoints of a run: everything needed to resume it exactly, plus the policy alone.

Layout: <run>/checkpoints/<update>/{run,policy,info}.
- `run`: the loop state: the whole runner state (params, optimiser state, env
  states, normaliser statistics, PRNG keys, update counter, hyperparameters),
  which runs diverged, and the metrics of every update so far;
- `policy`: plain dicts (parameters, observation statistics), so `jaxrl eval`
  restores it without the training code path;
- `info`: JSON: jaxrl version, update count, the config it was written with.
Orbax writes a checkpoint under a temporary name and renames it when complete,
so a crash or kill during a write leaves the earlier checkpoints restorable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxrl.errors import JaxrlError

FORMAT = 1  # bump when the layout of the `run` item changes


def _manager(directory: Path, keep: int | None = None, read_only: bool = False):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


class Checkpointer:
    """Writes checkpoints during a run; saves are asynchronous (the device-to-host copy is
    not), `close` waits for the last one. Write failures raise a JaxrlError naming the directory."""

    def __init__(self, directory: Path, keep: int = 3):
        self.directory = Path(directory)
        self.pending = None  # step of the write in flight
        try:
            self.manager = _manager(self.directory, keep)
        except OSError as err:
            raise JaxrlError(f"cannot write checkpoints to {str(self.directory)!r}: {_first_line(err)}") from None

    def save(self, step: int, run: Any, policy: dict, info: dict) -> None:
        import orbax.checkpoint as ocp

        self._wait()  # surfaces an error of the previous write
        try:
            self.pending = step
            self.manager.save(step, args=ocp.args.Composite(
                run=ocp.args.StandardSave(run), policy=ocp.args.StandardSave(policy),
                info=ocp.args.JsonSave({"format": FORMAT, "step": step, **info})), force=True)
        except Exception as err:  # disk full, read-only directory, ...
            self._failed(err)

    def _wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            self._failed(err)
        self.pending = None

    def _failed(self, err: Exception):
        raise JaxrlError(f"could not write checkpoint {self.pending} to {str(self.directory)!r}: "
                         f"{_first_line(err)}; earlier checkpoints are intact") from None

    def close(self) -> None:
        try:
            self._wait()
        finally:
            self.manager.close()


def save(directory: Path, step: int, run: Any, policy: dict, info: dict | None = None, keep: int = 3) -> None:
    """Write one checkpoint and wait for it."""
    ckpt = Checkpointer(directory, keep)
    try:
        ckpt.save(step, run, policy, info or {})
    finally:
        ckpt.close()


def steps(directory: Path) -> list[int]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    with _manager(directory, read_only=True) as manager:
        return sorted(manager.all_steps())


def _pick(directory: Path, step: int | None) -> tuple[int, list[int]]:
    available = steps(directory)
    if not available:
        raise JaxrlError(f"no checkpoint found in {str(directory)!r}")
    step = max(available) if step is None else step
    if step not in available:
        raise JaxrlError(f"no checkpoint {step} in {str(directory)!r}; available: {available}")
    return step, available


def _restore(directory: Path, step: int, available: list[int], **items):
    import orbax.checkpoint as ocp

    try:
        with _manager(directory, read_only=True) as manager:
            return manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as err:  # orbax raises many types for damaged files
        earlier = [s for s in available if s < step]
        hint = f"; resume from an earlier one with --from-checkpoint {earlier[-1]} (available: {earlier})" \
            if earlier else ""
        raise JaxrlError(f"checkpoint {str(Path(directory) / str(step))!r} could not be read: "
                         f"{_first_line(err)}{hint}") from None


def restore_policy(directory: Path, step: int | None = None) -> tuple[int, dict]:
    """Restore the policy item of checkpoint `step` (default: latest) as a dict of arrays."""
    import orbax.checkpoint as ocp

    directory = Path(directory)
    step, available = _pick(directory, step)
    return step, _restore(directory, step, available, policy=ocp.args.StandardRestore())["policy"]


def restore_info(directory: Path, step: int | None = None) -> tuple[int, dict]:
    import orbax.checkpoint as ocp

    directory = Path(directory)
    step, available = _pick(directory, step)
    return step, _restore(directory, step, available, info=ocp.args.JsonRestore())["info"]


def restore_run(directory: Path, step: int, target: Any) -> Any:
    """The `run` item of checkpoint `step`, restored into the structure, shapes and dtypes of `target`."""
    import orbax.checkpoint as ocp

    directory = Path(directory)
    step, available = _pick(directory, step)
    return _restore(directory, step, available, run=ocp.args.StandardRestore(target))["run"]
