"""The plan of a sweep: its points grouped by static fields, one compiled program per group.

Points are grouped by their static fields (shapes, program structure); each group is compiled once
and its (points x seeds) runs are vmapped inside it, in blocks of `max_parallel` runs that reuse the
one compilation.
"""

from __future__ import annotations

from dataclasses import dataclass

from jaxrl import algos
from jaxrl.config import ConfigError, fields_of, to_dict
from jaxrl.sweep.spec import RESERVED, SweepSpec, point_config, sample_points


def static_signature(config) -> tuple:
    """Fields that decide the compiled program: everything but the dynamic and seeding fields."""
    dynamic = {f.name for f in fields_of(type(config), "dynamic")}
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in to_dict(config).items()
                 if k not in dynamic and k not in RESERVED)


def group_points(configs: list) -> list[list[int]]:
    """Point indices grouped by static signature, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, config in enumerate(configs):
        groups.setdefault(static_signature(config), []).append(i)
    return list(groups.values())


def check_compile_count(spec: SweepSpec, groups: list[list[int]], configs: list, allow_many: bool) -> None:
    if len(groups) <= spec.max_compiles or allow_many:
        return
    varying = [d.name for d in spec.space
               if len({getattr(configs[g[0]], d.name) for g in groups}) > 1]
    raise ConfigError(f"this sweep needs {len(groups)} compilations (static fields vary: {', '.join(varying)}), "
                      f"more than max_compiles={spec.max_compiles}; sample them from a short list, or pass "
                      f"--allow-many-compiles to run it anyway")


def default_block_size() -> int:
    """Runs per compiled call when the spec does not say: on a 2-core CPU, blocks of 32 PPO/CartPole
    runs train 20% faster than blocks of 128 or 8 (benchmarks/SWEEP_RESULTS.md); accelerators want
    wide blocks."""
    import jax

    return 32 if jax.default_backend() == "cpu" else 1024


@dataclass(frozen=True)
class Plan:
    points: list[dict]  # the swept values of every point
    configs: list  # the validated config of every point
    groups: list[list[int]]  # point indices of each group (one compilation each)
    programs: list  # each group's Program


def make_plan(spec: SweepSpec, allow_many_compiles: bool) -> Plan:
    """Points, their configs, groups of one compilation each, and the groups' programs (envs built:
    errors before compiling)."""
    algorithm = algos.get(spec.algo)
    points = sample_points(spec)
    configs = [point_config(spec, i, p) for i, p in enumerate(points)]
    groups = group_points(configs)
    check_compile_count(spec, groups, configs, allow_many_compiles)
    return Plan(points, configs, groups, [algorithm.make_program(configs[g[0]]) for g in groups])
