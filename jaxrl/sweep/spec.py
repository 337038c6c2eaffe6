"""The sweep spec language: a YAML file or dict naming the algorithm, the fixed config and the swept space.

    algo: ppo
    env: gymnax:CartPole-v1
    base: {total_timesteps: 250000}          # fixed config fields
    method: random                           # or grid (lists only)
    num_points: 64                           # random search; or `budget` (env steps of the whole sweep)
    seeds: 2                                 # seeds per point: seed, seed+1, ...
    seed: 0                                  # first seed; also seeds the sampling of points
    max_parallel: 32                         # runs per compiled call (bounds memory; default in jaxrl.sweep.plan)
    metric: final_return                     # what the ranking sorts by (or auc)
    space:
      lr: {dist: log_uniform, low: 1.0e-5, high: 1.0e-1}
      ent_coef: {dist: uniform, low: 0.0, high: 0.05}
      clip_eps: [0.1, 0.2, 0.3]              # a list: a choice (random) or a grid axis

Run (point p, seed s) uses `PRNGKey(seed + s)`, exactly as `jaxrl train` with that config and
seed, so a sweep point is the same experiment as a single run. PBT specs (jaxrl.pbt) extend this language.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxrl import algos
from jaxrl.config import ConfigError, check_keys, declared_type, format_point, load_yaml

SPEC_KEYS = ("name", "algo", "env", "base", "space", "method", "num_points", "budget", "seeds", "seed",
             "max_parallel", "metric", "max_compiles")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")
METRICS = ("final_return", "auc")
RESERVED = ("seed", "num_seeds")  # set by the sweep itself (`seed`, `seeds`)


@dataclass(frozen=True)
class Dimension:
    """One swept config field: a choice of values or a uniform / log-uniform range."""

    name: str
    dist: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    field_type: type = float

    @property
    def log_scale(self) -> bool:
        """Plot on a log axis: log-uniform ranges, or positive numeric choices spanning 100x or more."""
        if self.dist == "log_uniform":
            return True
        nums = [v for v in self.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return self.dist == "choice" and len(nums) == len(self.values) and min(nums) > 0 and max(nums) >= 100 * min(nums)

    def sample(self, rng: np.random.Generator):
        if self.dist == "choice":
            return self.values[rng.integers(len(self.values))]
        if self.dist == "uniform":
            value = rng.uniform(self.low, self.high)
        else:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return int(round(value)) if self.field_type is int else float(value)


@dataclass(frozen=True)
class SweepSpec:
    algo: str
    base: dict  # fixed config fields (env included)
    space: tuple  # Dimension, ...
    method: str = "random"
    num_points: int = 0
    seeds: int = 1
    seed: int = 0
    max_parallel: int = 0  # 0: plan.default_block_size()
    metric: str = "final_return"
    max_compiles: int = 16
    name: str = "sweep"
    raw: dict = dataclasses.field(default_factory=dict)  # the spec as given (saved as spec.yaml)


def positive_int(data: dict, key: str, default: int, where: str, minimum: int = 1) -> int:
    """`data[key]` (or `default`) checked to be an integer >= `minimum` (a whole float such as 1e4 accepted)."""
    value = data.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}: {key}={value!r} must be an integer >= {minimum}")
    return value


def parse_dimension(name: str, entry: Any, field: dataclasses.Field, where: str) -> Dimension:
    field_type = declared_type(field)[0]
    if isinstance(entry, list):
        entry = {"dist": "choice", "values": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: space.{name} must be a list of values or a mapping with `dist` "
                          f"(one of {', '.join(DISTRIBUTIONS)}); got {entry!r} (fixed values go in `base`)")
    dist = entry.get("dist")
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: space.{name}.dist={dist!r} must be one of {', '.join(DISTRIBUTIONS)}")
    allowed = {"choice": {"dist", "values"}}.get(dist, {"dist", "low", "high"})
    extra = set(entry) - allowed
    if extra:
        raise ConfigError(f"{where}: space.{name} ({dist}) has unknown keys {sorted(extra)}; expected {sorted(allowed)}")
    if dist == "choice":
        values = entry.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: space.{name} is empty; give at least one value")
        values = [tuple(v) if isinstance(v, list) else v for v in values]
        return Dimension(name, "choice", tuple(values), field_type=field_type)
    if field_type not in (int, float):
        raise ConfigError(f"{where}: space.{name} is a {field.type} field; only numbers take a {dist} range "
                          f"(use a list of values)")
    low, high = entry.get("low"), entry.get("high")
    for bound, value in (("low", low), ("high", high)):
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"{where}: space.{name}.{bound}={value!r} must be a finite number")
        if bound == "low":
            low = float(value)
        else:
            high = float(value)
    if low >= high:
        raise ConfigError(f"{where}: space.{name}: low={low:g} must be < high={high:g}")
    if dist == "log_uniform" and low <= 0:
        raise ConfigError(f"{where}: space.{name}: log_uniform needs low > 0, got low={low:g}")
    return Dimension(name, dist, (), low, high, field_type)


def parse_spec(data: dict, where: str = "sweep spec") -> SweepSpec:
    """Validate a spec mapping (everything that can be checked without compiling)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    if "pbt" in data:
        raise ConfigError(f"{where}: a `pbt:` section is for population-based training; run this spec with "
                          f"`jaxrl pbt`, or remove the section to sweep")
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(SPEC_KEYS)}")
    algo = data.get("algo", "ppo")
    algorithm = algos.get(algo)
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{where}: base must be a mapping of config fields")
    base = dict(base)
    if "env" in data:
        if "env" in base:
            raise ConfigError(f"{where}: env is given both at the top level and in base")
        base["env"] = data["env"]
    check_keys(algorithm.Config, base, f"{where} base")
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where}: space is empty; name at least one config field to sweep")
    check_keys(algorithm.Config, space, f"{where} space")
    for key in RESERVED:
        if key in base or key in space:
            raise ConfigError(f"{where}: {key} is set by the sweep; use the spec's `seed` and `seeds`")
    both = sorted(set(base) & set(space))
    if both:
        raise ConfigError(f"{where}: {', '.join(both)} given both in base and in space")
    fields = {f.name: f for f in dataclasses.fields(algorithm.Config)}
    dims = tuple(parse_dimension(name, entry, fields[name], where) for name, entry in space.items())

    method = data.get("method", "random")
    if method not in ("random", "grid"):
        raise ConfigError(f"{where}: method={method!r} must be 'random' or 'grid'")
    seeds = positive_int(data, "seeds", 1, where)
    seed = positive_int(data, "seed", 0, where, minimum=0)
    metric = data.get("metric", "final_return")
    if metric not in METRICS:
        raise ConfigError(f"{where}: metric={metric!r} must be one of {', '.join(METRICS)}")
    if method == "grid":
        ranges = [d.name for d in dims if d.dist != "choice"]
        if ranges:
            raise ConfigError(f"{where}: a grid needs lists of values; {', '.join(ranges)} is a range "
                              f"(use method: random)")
        for key in ("num_points", "budget"):
            if key in data:
                raise ConfigError(f"{where}: {key} applies to random search; a grid runs all "
                                  f"{math.prod(len(d.values) for d in dims)} points")
        num_points = math.prod(len(d.values) for d in dims)
    else:
        num_points = _points_from_budget(data, algorithm, base, space, seeds, where)
    name = str(data.get("name") or f"{algo}-{str(base.get('env', algorithm.Config.env)).split(':')[-1]}")
    return SweepSpec(algo, base, dims, method, num_points, seeds, seed,
                     positive_int(data, "max_parallel", 0, where, minimum=0), metric,
                     positive_int(data, "max_compiles", 16, where), name, dict(data))


def _points_from_budget(data, algorithm, base, space, seeds, where) -> int:
    if "budget" not in data:
        if "num_points" not in data:
            raise ConfigError(f"{where}: random search needs num_points or budget (env steps of the whole sweep)")
        return positive_int(data, "num_points", 1, where)
    budget = positive_int(data, "budget", 1, where)
    if "total_timesteps" in space:
        raise ConfigError(f"{where}: a budget needs a fixed total_timesteps, but it is swept")
    from jaxrl.algos import resolve_config

    steps = resolve_config(data.get("algo", "ppo"), overrides=base).total_timesteps
    per_point = seeds * steps
    if budget % per_point:
        raise ConfigError(f"{where}: budget={budget} env steps does not divide into points of "
                          f"seeds*total_timesteps={seeds}*{steps}={per_point} steps")
    points = budget // per_point
    if "num_points" in data and data["num_points"] != points:
        raise ConfigError(f"{where}: num_points={data['num_points']} disagrees with budget={budget} "
                          f"({points} points of {per_point} steps)")
    return points


def load_spec(path: str | Path) -> SweepSpec:
    return parse_spec(load_yaml(path, "sweep spec"), f"sweep spec {str(path)!r}")


def sample_points(spec: SweepSpec) -> list[dict]:
    """The swept values of every point, in order (grid: all combinations; random: seeded samples)."""
    if spec.method == "grid":
        return [dict(zip([d.name for d in spec.space], combo)) for combo in
                itertools.product(*[d.values for d in spec.space])]
    rng = np.random.default_rng(spec.seed)
    return [{d.name: d.sample(rng) for d in spec.space} for _ in range(spec.num_points)]


def point_config(spec: SweepSpec, index: int, point: dict):
    """The validated config of one point (its seeds are `spec.seed + s`)."""
    from jaxrl.algos import resolve_config

    try:
        return resolve_config(spec.algo, overrides={**spec.base, **point, "seed": spec.seed, "num_seeds": spec.seeds})
    except ConfigError as err:
        raise ConfigError(f"sweep point {index} ({format_point(point)}): {err}") from None

