"""Progress of a long run on stderr, shown between compiled chunks (train, resume, sweep, PBT)."""

from __future__ import annotations

import math
import sys
import time


class Progress:
    """Progress between compiled chunks, on the main process only: a live bar over env steps where
    stderr is a terminal; elsewhere (a log file) or with `progress="lines"` (--no-progress), a plain
    line at every tenth of the run, so logs get no bar redraws. `progress=False` shows nothing."""

    def __init__(self, total_steps: int, progress: bool | str, desc: str = "train"):
        from jaxrl.devices import is_main

        self.enabled = bool(progress) and is_main()
        self.lines = progress == "lines" or not sys.stderr.isatty()
        self.bar = None
        self.total = total_steps
        self.desc = desc
        self.started = None  # lines: when the first chunk began
        self.tenth = -1  # lines: the last tenth of the run reported

    def compiling(self, what: str) -> None:
        if self.enabled:
            print(f"compiling {what} ...", file=sys.stderr, end=" ", flush=True)

    def compiled(self, seconds: float) -> None:
        if self.enabled:
            print(f"{seconds:.1f} s", file=sys.stderr, flush=True)
            self.open()

    def open(self) -> None:
        if not self.enabled or self.started is not None:
            return
        self.started = time.perf_counter()
        if not self.lines:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="step", unit_scale=True, dynamic_ncols=True, file=sys.stderr,
                            desc=self.desc, bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                                       "[{elapsed}<{remaining}{postfix}]")

    def message(self, text: str) -> None:
        """A line of text that does not break the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def update(self, env_steps: int, postfix: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(env_steps - self.bar.n)
        elif self.enabled and self.lines and 10 * env_steps // self.total > self.tenth:
            self.open()
            self.tenth = 10 * env_steps // self.total
            print(f"{self.desc} {100 * env_steps / self.total:3.0f}% {env_steps:,}/{self.total:,} steps, {postfix}, "
                  f"{time.perf_counter() - self.started:.0f} s", file=sys.stderr, flush=True)

    def chunk(self, env_steps: int, steps_per_s: float, ret: float) -> None:
        self.update(env_steps, f"{steps_per_s / 1e3:,.0f}k steps/s, "
                               + ("no episode finished" if math.isnan(ret) else f"return {ret:.1f}"))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
