"""Environment ids: `<source>:<name>`, e.g. `gymnax:CartPole-v1`, `brax:ant`.

Sources import their package only when one of their ids is used, so
`make("gymnax:CartPole-v1")` does not pay for importing brax or jaxmarl.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import os
import sys
from typing import Callable

from jaxrl.envs.core import Environment
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


class UnknownEnvError(JaxrlError):
    pass


def register(env_id: str, factory: Callable[..., Environment]) -> None:
    """Make `make(env_id)` call `factory(**kwargs)`; the id needs a `source:` prefix."""
    if ":" not in env_id:
        raise JaxrlError(f"env id {env_id!r} needs a source prefix, e.g. 'mylab:{env_id}'")
    if env_id in _USER:
        raise JaxrlError(f"env id {env_id!r} is already registered")
    _USER[env_id] = factory


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


def list_ids(pattern: str = "") -> list[str]:
    """All known ids (optionally those containing `pattern`, case-insensitive)."""
    every = [i for s in _SOURCES for i in _source_ids(s)] + sorted(_USER)
    return [i for i in every if pattern.lower() in i.lower()]


def _unknown(env_id: str, candidates: list[str]) -> UnknownEnvError:
    close = difflib.get_close_matches(env_id, candidates, n=5, cutoff=0.4)
    if not close:
        name = env_id.split(":")[-1].lower()
        close = [c for c in candidates if name and name in c.lower()][:5]
    hint = f"; closest: {', '.join(close)}" if close else ""
    return UnknownEnvError(f"unknown env id {env_id!r}{hint} (run 'jaxrl envs' for the full list)")


def make(env_id: str, **kwargs) -> Environment:
    """Build the environment named `env_id`; its MDP parameters are `env.default_params`."""
    if env_id in _USER:
        env = _USER[env_id](**kwargs)
        env.env_id = env.env_id or env_id
        return env
    source, sep, name = env_id.partition(":")
    if not sep or source not in _SOURCES:
        raise _unknown(env_id, list_ids())
    names = _source_ids(source)
    if env_id not in names:
        if not names:
            raise UnknownEnvError(f"env source {source!r} is unavailable: its package failed to import")
        raise _unknown(env_id, names)
    try:
        with _quiet():
            return importlib.import_module(_SOURCES[source]).make(name, **kwargs)
    except TypeError as err:
        raise JaxrlError(f"bad keyword arguments for {env_id}: {err}") from err
