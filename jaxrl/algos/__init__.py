"""Algorithm registry: each algorithm is one module with `Config`, `make_program`,
`make_train`, `policy_state`, `make_policy` and `PRESETS`."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from jaxrl.errors import JaxrlError

ALGOS = {
    "ppo": ("jaxrl.algos.ppo", "Proximal Policy Optimisation, discrete and continuous actions"),
    "ippo": ("jaxrl.algos.ippo", "multi-agent PPO, parameters shared by all agents; self-play on two-player games"),
    "mappo": ("jaxrl.algos.mappo", "ippo with a centralised critic on the world state"),
}


def get(name: str) -> ModuleType:
    if name not in ALGOS:
        close = difflib.get_close_matches(name, list(ALGOS), n=3, cutoff=0.3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise JaxrlError(f"unknown algorithm {name!r}{hint} (available: {', '.join(ALGOS)})")
    return importlib.import_module(ALGOS[name][0])
