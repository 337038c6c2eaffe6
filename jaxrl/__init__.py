"""jaxrl: reinforcement learning where the whole training run is one compiled JAX program."""

import os

__version__ = "0.1.0"


def _single_threaded_eigen() -> None:
    """Run XLA:CPU's Eigen kernels on the calling thread unless the user chose otherwise.

    XLA's multi-threaded Eigen pool has been seen to wedge (block_until_ready
    waiting forever at 0% CPU) on vmapped programs; single-threaded Eigen avoids
    it and is no slower for our small matrices. Takes effect only if JAX's CPU
    backend has not started yet. Opt out with JAXRL_XLA_MULTI_THREAD_EIGEN=1.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("JAXRL_XLA_MULTI_THREAD_EIGEN") != "1" and "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


_single_threaded_eigen()
