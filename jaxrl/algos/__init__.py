"""Algorithm registry and config resolution (defaults, presets, config file, overrides): each algorithm
is one module declaring an `ALGORITHM` (jaxrl.algos.base.Algorithm), registered here by one line."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from jaxrl.algos.base import Algorithm
from jaxrl.config import check_keys, current_names, load_yaml
from jaxrl.errors import JaxrlError

ALGOS = {  # name -> the module declaring its ALGORITHM
    "ppo": "jaxrl.algos.ppo",
    "ippo": "jaxrl.algos.ippo",
    "mappo": "jaxrl.algos.mappo",
    "dqn": "jaxrl.algos.dqn",
    "pqn": "jaxrl.algos.pqn",
    "sac": "jaxrl.algos.sac",
    "td3": "jaxrl.algos.td3",
    "stream_ac": "jaxrl.algos.stream_ac",
    "stream_q": "jaxrl.algos.stream_q",
}


def get(name: str) -> Algorithm:
    if name not in ALGOS:
        close = difflib.get_close_matches(name, list(ALGOS), n=3, cutoff=0.3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise JaxrlError(f"unknown algorithm {name!r}{hint} (available: {', '.join(ALGOS)})")
    algorithm = importlib.import_module(ALGOS[name]).ALGORITHM
    if algorithm.name != name:
        raise JaxrlError(f"{ALGOS[name]} declares algorithm {algorithm.name!r}, registered as {name!r}")
    return algorithm


def of_config(config) -> Algorithm:
    """The algorithm whose Config `config` is."""
    for name in ALGOS:
        if type(config) is get(name).Config:
            return get(name)
    raise JaxrlError(f"{type(config).__name__} is not a registered algorithm config")


def resolve_config(algo: str = "ppo", config_file: str | None = None, overrides: dict[str, Any] | None = None):
    """Defaults <- preset of the env <- config file <- overrides; validated, before any compilation."""
    algorithm = get(algo)
    values: dict[str, Any] = {}
    if config_file:
        values = current_names(load_yaml(config_file))
        file_algo = values.pop("algo", algo)
        if file_algo != algo:
            raise JaxrlError(f"config file {config_file!r} is for algo {file_algo!r}, not {algo!r}")
        check_keys(algorithm.Config, values, f"config file {config_file!r}")
    overrides = dict(overrides or {})
    check_keys(algorithm.Config, overrides, "overrides")
    env_id = overrides.get("env", values.get("env", algorithm.Config.env))
    preset = {}
    for prefix, settings in algorithm.presets.items():  # under the file and overrides, which always win
        if isinstance(env_id, str) and env_id.startswith(prefix):
            preset.update(settings)
    return algorithm.Config(**{**preset, **values, **overrides})
