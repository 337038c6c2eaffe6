"""Orbax checkpoints of a run: the whole runner state plus the policy alone.

Layout: <run>/checkpoints/<update>/{state,policy}. `policy` holds plain dicts
(parameters, observation statistics), so `jaxrl eval` restores it without the
training code path; `state` is the full runner state for resuming.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxrl.errors import JaxrlError


def _manager(directory: Path, keep: int | None = None, read_only: bool = False):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only)
    return ocp.CheckpointManager(directory.absolute(), options=options)


def save(directory: Path, step: int, state: Any, policy: dict, keep: int = 3) -> None:
    """Write checkpoint `step` (orbax writes to a temporary name, then renames)."""
    import orbax.checkpoint as ocp

    with _manager(Path(directory), keep) as manager:
        manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   policy=ocp.args.StandardSave(policy)))
        manager.wait_until_finished()


def steps(directory: Path) -> list[int]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    with _manager(directory, read_only=True) as manager:
        return list(manager.all_steps())


def restore_policy(directory: Path, step: int | None = None) -> tuple[int, dict]:
    """Restore the policy item of checkpoint `step` (default: latest) as a dict of arrays."""
    import orbax.checkpoint as ocp

    directory = Path(directory)
    available = steps(directory)
    if not available:
        raise JaxrlError(f"no checkpoint found in {str(directory)!r}")
    step = max(available) if step is None else step
    if step not in available:
        raise JaxrlError(f"no checkpoint {step} in {str(directory)!r}; available: {available}")
    try:
        with _manager(directory, read_only=True) as manager:
            restored = manager.restore(step, args=ocp.args.Composite(policy=ocp.args.StandardRestore()))
    except Exception as err:  # orbax raises many types for damaged files
        raise JaxrlError(f"checkpoint {str(directory / str(step))!r} could not be read: "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    return step, restored["policy"]
