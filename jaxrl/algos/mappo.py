"""MAPPO (Yu et al. 2022): `ippo` with a centralised critic on the env's world state.

Everything but the critic's default input is ippo's; see jaxrl/algos/ippo.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxrl.algos import ippo
from jaxrl.algos.ippo import (  # noqa: F401
    PRESETS, evaluate, make_actor, make_policy, make_program, make_train, policy_state, report)
from jaxrl.config import static


@dataclass(frozen=True)
class Config(ippo.Config):
    critic: str = static("world_state", "critic input: world_state (MAPPO) or local (own observation, IPPO)",
                         choices=("local", "world_state"))

__all__ = ["Config", "PRESETS", "evaluate", "make_actor", "make_policy", "make_program", "make_train",
           "policy_state", "report"]
