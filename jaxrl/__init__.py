"""jaxrl: reinforcement learning where the whole training run is one compiled JAX program."""

import os

__version__ = "0.1.0"


def _robust_cpu_runtime() -> None:
    """Settings for XLA:CPU that avoid a hang seen with vmapped programs on small machines.

    Symptom: `block_until_ready` waits forever at 0% CPU with every XLA worker
    thread idle (a lost task hand-off). Running computations inline (no async
    dispatch; our compiled chunks are long, so nothing is lost) and Eigen on the
    calling thread avoids the hand-offs. Both must be set before JAX starts, and
    both yield to the user's own settings (JAX_CPU_ENABLE_ASYNC_DISPATCH, XLA_FLAGS).
    """
    os.environ.setdefault("JAX_CPU_ENABLE_ASYNC_DISPATCH", "false")
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


_robust_cpu_runtime()
