"""MAPPO (Yu et al. 2022): `ippo` with a centralised critic on the env's world state.

Everything but the critic's default input is ippo's; see jaxrl/algos/ippo.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from jaxrl.algos import ippo
from jaxrl.config import static


@dataclass(frozen=True)
class Config(ippo.Config):
    critic: str = static("world_state", "critic input: world_state (MAPPO) or local (own observation, IPPO)",
                         choices=("local", "world_state"))


ALGORITHM = dataclasses.replace(ippo.ALGORITHM, name="mappo", description="ippo with a centralised critic on the "
                                "world state", Config=Config)
make_train = ALGORITHM.make_train
