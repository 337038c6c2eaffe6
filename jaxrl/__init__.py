"""jaxrl: reinforcement learning where the whole training run is one compiled JAX program."""

__version__ = "0.1.0"
__all__ = ["load_policy"]


def __getattr__(name: str):
    if name == "load_policy":  # imported on first use, so `import jaxrl` stays cheap
        from jaxrl.api import load_policy

        return load_policy
    raise AttributeError(f"module 'jaxrl' has no attribute {name!r}")
