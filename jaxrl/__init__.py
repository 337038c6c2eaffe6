"""jaxrl: reinforcement learning where the whole training run is one compiled JAX program."""

__version__ = "0.1.0"
