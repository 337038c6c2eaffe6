"""SIGTERM/SIGINT handling for long runs: stop cleanly between compiled chunks.

The first signal asks the run to stop: the host loop finishes the chunk it is
running, writes a checkpoint and marks the run `preempted`. A second signal
aborts at once (KeyboardInterrupt); checkpoints already complete stay intact
because orbax renames a checkpoint into place only when it is whole.
"""

from __future__ import annotations

import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionGuard:
    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # second signal: abort now
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after the current chunk and writing a checkpoint "
              f"(send it again to abort at once)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
