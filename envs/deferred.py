"""Modules that load on first use: env packages import much that a run never touches (gymnax its renderers'
plotting libraries, jaxmarl every env family), seconds of every process that builds one of their envs."""

from __future__ import annotations

import importlib.util
import sys
import types


class _Deferred(types.ModuleType):
    """A module in sys.modules whose code has not run yet. It has its spec's attributes (a package its `__path__`,
    so its submodules import through it without running it); the first name it lacks runs its code, in it."""

    def __getattr__(self, attr):
        self.__class__ = types.ModuleType  # runs once; a name still missing afterwards raises as usual
        try:
            self.__spec__.loader.exec_module(self)
        except BaseException:
            if sys.modules.get(self.__name__) is self:  # as a failed import leaves it: not imported
                del sys.modules[self.__name__]
            raise
        return getattr(self, attr)


def defer_import(name: str) -> None:
    """Make module `name` load on first use, if it is installed and not imported yet (a dotted name imports its
    parent packages, or defers them first)."""
    spec = None if name in sys.modules else importlib.util.find_spec(name)
    if spec is None:
        return
    module = importlib.util.module_from_spec(spec)
    module.__class__ = _Deferred
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # bound to its package, as an import binds it
        setattr(sys.modules[parent], child, module)


def is_loaded(name: str) -> bool:
    """Whether module `name` is imported and its code has run (not only deferred)."""
    return name in sys.modules and not isinstance(sys.modules[name], _Deferred)
