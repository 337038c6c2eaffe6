"""SIGTERM/SIGINT handling for long runs: stop cleanly between compiled chunks.

The first signal asks the run to stop: the host loop finishes the chunk it is
running, writes a checkpoint and marks the run `preempted`. The process ends at
once instead, with exit status 128 + signum, on a signal while the program
compiles (nothing has run, so nothing is lost, and a compile can take a minute)
and on a second signal at any time; `on_abort` records the run's status first.
Checkpoints already complete stay intact because orbax renames a checkpoint into
place only when it is whole.

Python runs signal handlers only in the main thread, between bytecodes, so a
compile (one long call into XLA) runs in a worker thread while the main thread
waits where a handler can run. Ending at once is `os._exit`: leaving through the
interpreter's shutdown while XLA compiles in another thread, or after an
exception raised inside JAX's lowering, can crash (LLVM ERROR, segfault).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import suppress
from typing import Callable, NoReturn, TypeVar

SIGNALS = (signal.SIGTERM, signal.SIGINT)
T = TypeVar("T")


class PreemptionGuard:
    """`with PreemptionGuard(on_abort):` around a run. Handlers are set only in the main thread;
    elsewhere signals keep their usual effect and `interruptible(fn)` is `fn()`.

    `on_abort(status, message) -> message` records the run's status before the process ends at
    once: "preempted" when stopped while compiling, "interrupted" on a second signal; it returns
    the line to print (the message with what to do next)."""

    def __init__(self, on_abort: Callable[[str, str], str] | None = None):
        self.signum: int | None = None
        self.on_abort = on_abort
        self._compiling = False
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self._compiling or self.signum is not None:
            self._abort(signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after the current chunk and writing a checkpoint "
              f"(send it again to abort at once)", file=sys.stderr, flush=True)

    def _abort(self, signum: int) -> NoReturn:
        for sig in SIGNALS:  # a further signal must not cut the status write short
            signal.signal(sig, signal.SIG_IGN)
        name = signal.Signals(signum).name
        if self._compiling:
            status, message = "preempted", f"stopped by {name} while compiling, before any update ran"
        else:
            status, message = "interrupted", f"aborted at once by a second {name}"
        try:
            message = self.on_abort(status, message) if self.on_abort else message
        except Exception as err:  # the full disk that stopped the run, ...
            message += f"; the run's status ({status}) could not be recorded: {err}"
        finally:
            with suppress(Exception):  # a closed or broken stream must not keep the process alive
                print(f"\n{message}", file=sys.stderr)
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(128 + signum)

    def interruptible(self, fn: Callable[[], T]) -> T:
        """`fn()` (a compilation) in a worker thread while this thread waits where a signal ends the
        process at once; a plain call where no handler is set."""
        if not self._previous:
            return fn()
        outcome = {}

        def work():
            try:
                outcome["value"] = fn()
            except BaseException as err:
                outcome["error"] = err

        worker = threading.Thread(target=work, name="jaxrl-compile", daemon=True)
        self._compiling = True
        try:
            if self.signum is not None:  # a signal came just before: do not start a compile
                self._abort(self.signum)
            worker.start()
            worker.join()  # signal handlers run during the wait
        finally:
            self._compiling = False
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
