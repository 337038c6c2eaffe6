"""Environment ids: `<source>:<name>`, e.g. `gymnax:CartPole-v1`, `brax:ant`.

Sources import their package only when one of their ids is used, so
`make("gymnax:CartPole-v1")` does not pay for importing brax or jaxmarl.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import io
import os
import sys
from pathlib import Path
from typing import Callable

from jaxrl.envs.core import Environment
from jaxrl.envs.deferred import is_loaded
from jaxrl.errors import JaxrlError

# source -> module with `ids()` and `make(name, **kwargs)`
_SOURCES = {
    "gymnax": "jaxrl.envs.gymnax_adapter",
    "brax": "jaxrl.envs.brax_adapter",
    "jaxmarl": "jaxrl.envs.jaxmarl_adapter",
    "jaxrl": "jaxrl.envs.own",
}
# ids registered at run time by users: full id -> factory(**kwargs) -> Environment
_USER: dict[str, Callable[..., Environment]] = {}
# modules imported for the ids they register (`--import`): recorded in metadata.json, so that eval
# and resume of a run import them again
_IMPORTED: list[str] = []


class UnknownEnvError(JaxrlError):
    pass


def register(env_id: str, factory: Callable[..., Environment]) -> None:
    """Make `make(env_id)` call `factory(**kwargs)`; the id needs a `source:` prefix."""
    if ":" not in env_id:
        raise JaxrlError(f"env id {env_id!r} needs a source prefix, e.g. 'mylab:{env_id}'")
    if env_id in _USER:
        raise JaxrlError(f"env id {env_id!r} is already registered")
    _USER[env_id] = factory


def import_modules(specs: list[str], source: str) -> None:
    """Import each module, a dotted name or a path to a .py file, once, so that its `register` calls
    run. `source` says where the list came from (`--import`, a run's metadata.json), for errors."""
    for spec in specs:
        is_file = spec.endswith(".py")
        key = str(Path(spec).resolve()) if is_file else spec  # files by absolute path: eval runs anywhere
        if key in _IMPORTED:
            continue
        if is_file and not Path(spec).is_file():
            raise JaxrlError(f"cannot import {spec!r} ({source}): no such file")
        name = f"jaxrl_import_{Path(spec).stem}"
        try:
            if is_file:
                module_spec = importlib.util.spec_from_file_location(name, spec)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module  # dataclasses look their module up there
                module_spec.loader.exec_module(module)
            else:
                importlib.import_module(spec)
        except Exception as err:
            if is_file:
                sys.modules.pop(name, None)
            missing = isinstance(err, ModuleNotFoundError) and err.name and spec.startswith(err.name)
            hint = "; give a path to a .py file or put its folder on PYTHONPATH" if missing else ""
            raise JaxrlError(f"cannot import {spec!r} ({source}): {type(err).__name__}: {err}{hint}") from err
        _IMPORTED.append(key)


def imported_modules() -> list[str]:
    """The modules `import_modules` imported in this process, as a run records them."""
    return list(_IMPORTED)


@contextlib.contextmanager
def _quiet():
    """Silence stdout: brax and jaxmarl print import chatter, and stdout is for our output.

    At the file-descriptor level, since jaxmarl's import rebinds sys.stdout.
    """
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _source_ids(source: str) -> list[str]:
    try:
        with _quiet():
            return [f"{source}:{name}" for name in importlib.import_module(_SOURCES[source]).ids()]
    except ImportError:  # an optional package that is not installed
        return []


def _listed(source: str) -> list[str]:
    """A source's ids that work, without importing its package: the adapter's `IDS`, plus the ids
    registered with the package at run time (brax.envs.register_environment) once it is loaded."""
    adapter = importlib.import_module(_SOURCES[source])
    listed = [f"{source}:{name}" for name in adapter.IDS]
    if is_loaded(adapter.PACKAGE):  # loaded anyway: reading its registry costs nothing
        known = set(listed) | {f"{source}:{name}" for name in adapter.UNAVAILABLE}
        listed += [i for i in _source_ids(source) if i not in known]
    return listed


def list_ids(pattern: str = "") -> list[str]:
    """The ids that construct and reset here (optionally those containing `pattern`, case-insensitive),
    including those registered with `register`."""
    every = [i for s in _SOURCES for i in _listed(s)] + sorted(_USER)
    return [i for i in every if pattern.lower() in i.lower()]


def unavailable_ids(pattern: str = "") -> dict[str, str]:
    """Ids the env packages register that fail here -> why (e.g. a missing optional package)."""
    every = {f"{s}:{name}": why for s in _SOURCES
             for name, why in importlib.import_module(_SOURCES[s]).UNAVAILABLE.items()}
    return {i: why for i, why in every.items() if pattern.lower() in i.lower()}


def _unknown(env_id: str, candidates: list[str]) -> UnknownEnvError:
    close = difflib.get_close_matches(env_id, candidates, n=5, cutoff=0.4)
    if not close:
        name = env_id.split(":")[-1].lower()
        close = [c for c in candidates if name and name in c.lower()][:5]
    hint = f"; closest: {', '.join(close)}" if close else ""
    if env_id.partition(":")[0] not in _SOURCES:
        hint += "; an id registered from Python needs its module imported first: --import MODULE"
    return UnknownEnvError(f"unknown env id {env_id!r}{hint} (run 'jaxrl envs' for the full list)")


def _unavailable(source: str, detail: str = "") -> UnknownEnvError:
    return UnknownEnvError(f"env source {source!r} is unavailable: its package failed to import{detail}")


def make(env_id: str, **kwargs) -> Environment:
    """Build the environment named `env_id`; its MDP parameters are `env.default_params`."""
    if env_id in _USER:
        env = _USER[env_id](**kwargs)
        env.env_id = env.env_id or env_id
        return env
    source, sep, name = env_id.partition(":")
    if not sep or source not in _SOURCES:
        raise _unknown(env_id, list_ids())
    adapter = importlib.import_module(_SOURCES[source])
    if name not in adapter.IDS and name not in adapter.UNAVAILABLE:  # registered at run time, or unknown
        names = _source_ids(source)
        if env_id not in names:
            if not names:
                raise _unavailable(source)
            raise _unknown(env_id, names)
    try:
        with _quiet():
            return adapter.make(name, **kwargs)
    except TypeError as err:
        raise JaxrlError(f"bad keyword arguments for {env_id}: {err}") from err
    except ImportError as err:
        raise _unavailable(source, f" ({err})") from err
    except Exception as err:
        if name not in adapter.UNAVAILABLE or isinstance(err, JaxrlError):
            raise
        raise JaxrlError(f"{env_id} is unavailable here: {adapter.UNAVAILABLE[name]} "
                         f"({type(err).__name__}: {' '.join(str(err).split())})") from err
