"""Orbax checkpoints of a run: everything needed to resume it exactly, plus the policy alone.

Layout: <run>/checkpoints/<update>/{run,policy,info}.
- `run`: the loop state: the whole runner state (params, optimiser state, env
  states, normaliser statistics, PRNG keys, update counter, hyperparameters),
  which runs diverged, and the metrics of every update so far;
- `policy`: plain dicts (parameters, observation statistics), so `jaxrl eval`
  restores it without the training code path;
- `info`: JSON: jaxrl version, update count, the config it was written with, and a
  sha256 of every array of `run` and `policy`, checked on restore so that damaged
  files fail with a clear error instead of loading garbage.
Orbax writes a checkpoint under a temporary name and renames it when complete,
so a crash or kill during a write leaves the earlier checkpoints restorable.
Orbax refuses zero-size arrays (brax env states hold some): they are stored as
None and rebuilt from the restore target's shape and dtype.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from jaxrl.errors import JaxrlError

FORMAT = 1  # bump when the layout of the `run` item changes


def _manager(directory: Path, keep: int | None = None, read_only: bool = False):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().split(" [tensorstore_spec")[0]  # tensorstore appends its whole JSON spec
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def _is_empty(leaf) -> bool:
    return math.prod(np.shape(leaf)) == 0


def _without_empty(tree):
    """`tree` with its zero-size leaves replaced by None, which orbax stores as an empty node."""
    import jax

    return jax.tree.map(lambda leaf: None if _is_empty(leaf) else leaf, tree)


def _with_empty(target, restored):
    """`restored` (restored into `_without_empty(target)`) with the zero-size leaves of `target` back."""
    import jax

    leaves, treedef = jax.tree.flatten(target)
    stored = iter(jax.tree.leaves(restored))
    return treedef.unflatten([np.zeros(leaf.shape, leaf.dtype) if _is_empty(leaf) else next(stored)
                              for leaf in leaves])


def _leaf_name(path) -> str:
    """'state/params/dense_0/kernel': the same for a dataclass field and the dict orbax restores it as."""
    return "/".join(str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key)))) for key in path)


def _checksums(tree) -> dict[str, str]:
    """sha256 of the bytes of every non-empty leaf of a tree of host arrays, by leaf name."""
    import jax

    def digest(leaf) -> str:  # as bytes: buffers refuse some dtypes (bfloat16)
        return hashlib.sha256(np.ascontiguousarray(leaf).reshape(-1).view(np.uint8).data).hexdigest()

    return {_leaf_name(path): digest(leaf)
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0] if not _is_empty(leaf)}


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
        """`run` and `policy`: host (NumPy) arrays, hashed here before the asynchronous write."""
        import orbax.checkpoint as ocp

        self._wait()  # surfaces an error of the previous write
        info = {"format": FORMAT, "step": step, **info,
                "checksums": {"run": _checksums(run), "policy": _checksums(policy)}}
        try:
            self.pending = step
            self.manager.save(step, args=ocp.args.Composite(
                run=ocp.args.StandardSave(_without_empty(run)), policy=ocp.args.StandardSave(_without_empty(policy)),
                info=ocp.args.JsonSave(info)), force=True)
        except Exception as err:  # disk full, read-only directory, ...
            self._failed(err)

    def _wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as err:
            self._failed(err)
        self.pending = None

    def _failed(self, err: Exception):
        earlier = [s for s in steps(self.directory) if s < self.pending]
        kept = f"earlier checkpoints are intact: {earlier}" if earlier else "no earlier checkpoint exists"
        raise JaxrlError(f"could not write checkpoint {self.pending} to {str(self.directory)!r}: "
                         f"{_first_line(err)}; {kept}") from None

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


def _read(directory: Path, step: int, items: dict) -> dict:
    """`items` (name -> orbax restore args) of checkpoint `step`, with its info item."""
    import orbax.checkpoint as ocp

    with _manager(directory, read_only=True) as manager:
        return manager.restore(step, args=ocp.args.Composite(**items, info=ocp.args.JsonRestore()))


def _damaged(restored: dict) -> list[str]:
    """Names of the restored arrays whose bytes differ from the checksums written with them
    (checkpoints of jaxrl before checksums have none: nothing to check)."""
    written = restored["info"].get("checksums", {})
    damaged = []
    for item in written.keys() & restored.keys():
        expected, actual = written[item], _checksums(restored[item])
        damaged += [f"{item}/{name}" for name in sorted(expected.keys() | actual.keys())
                    if expected.get(name) != actual.get(name)]
    return damaged


def _intact(directory: Path, step: int, names) -> bool:
    import orbax.checkpoint as ocp

    try:
        return not _damaged(_read(directory, step, {name: ocp.args.StandardRestore() for name in names}))
    except Exception:  # unreadable
        return False


def _restore(directory: Path, step: int, available: list[int], flag: str, **items) -> dict:
    """`items` of checkpoint `step` and its info, the arrays checked against their checksums. A failure
    names the earlier checkpoints whose same items are intact, and `flag` (`{}`: the step) picks one."""
    try:
        restored = _read(directory, step, items)
    except Exception as err:  # orbax raises many types for damaged files
        problem = f"could not be read: {_first_line(err)}"
    else:
        damaged = _damaged(restored)
        if not damaged:
            return restored
        problem = (f"is damaged: {len(damaged)} array(s) differ from the checksums written with it "
                   f"({', '.join(damaged[:3])}{', ...' if len(damaged) > 3 else ''})")
    intact = [s for s in available if s < step and _intact(directory, s, items)]
    hint = f"earlier intact checkpoints: {intact}, use one with {flag.format(intact[-1])}" if intact \
        else "no earlier checkpoint is intact"
    raise JaxrlError(f"checkpoint {str(Path(directory) / str(step))!r} {problem}; {hint}") from None


def restore_policy(directory: Path, step: int | None = None, flag: str = "--checkpoint {}") -> tuple[int, dict]:
    """Restore the policy item of checkpoint `step` (default: latest) as a dict of arrays.
    `flag`: how the command line picks checkpoint `{}`, named when this one is damaged."""
    import orbax.checkpoint as ocp

    directory = Path(directory)
    step, available = _pick(directory, step)
    return step, _restore(directory, step, available, flag, policy=ocp.args.StandardRestore())["policy"]


def restore_info(directory: Path, step: int | None = None, flag: str = "--from-checkpoint {}") -> tuple[int, dict]:
    directory = Path(directory)
    step, available = _pick(directory, step)
    return step, _restore(directory, step, available, flag)["info"]


def restore_run(directory: Path, step: int, target: Any, flag: str = "--from-checkpoint {}") -> Any:
    """The `run` item of checkpoint `step`, restored into the structure, shapes and dtypes of `target`
    (zero-size leaves: new arrays of the target's shape and dtype)."""
    import orbax.checkpoint as ocp

    directory = Path(directory)
    step, available = _pick(directory, step)
    restored = _restore(directory, step, available, flag, run=ocp.args.StandardRestore(_without_empty(target)))
    return _with_empty(target, restored["run"])
