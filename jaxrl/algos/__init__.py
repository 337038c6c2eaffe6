"""Algorithm registry and config resolution (defaults, presets, config file, overrides): each algorithm
is one module with `Config`, `make_program`, `make_train`, `policy_state`, `make_policy` and `PRESETS`."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType
from typing import Any

from jaxrl.config import check_keys, load_yaml
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


def resolve_config(algo: str = "ppo", config_file: str | None = None, overrides: dict[str, Any] | None = None):
    """Defaults <- preset of the env <- config file <- overrides; validated, before any compilation."""
    module = get(algo)
    values: dict[str, Any] = {}
    if config_file:
        values = load_yaml(config_file)
        file_algo = values.pop("algo", algo)
        if file_algo != algo:
            raise JaxrlError(f"config file {config_file!r} is for algo {file_algo!r}, not {algo!r}")
        check_keys(module.Config, values, f"config file {config_file!r}")
    overrides = dict(overrides or {})
    check_keys(module.Config, overrides, "overrides")
    env_id = overrides.get("env", values.get("env", module.Config.env))
    preset = {}
    for prefix, settings in module.PRESETS.items():  # under the file and overrides, which always win
        if isinstance(env_id, str) and env_id.startswith(prefix):
            preset.update(settings)
    return module.Config(**{**preset, **values, **overrides})
