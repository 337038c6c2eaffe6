"""Hyperparameter sweeps: points x seeds trained inside one compiled program per static group.

A spec (YAML file or dict):

    algo: ppo
    env: gymnax:CartPole-v1
    base: {total_timesteps: 250000}          # fixed config fields
    method: random                           # or grid (lists only)
    num_points: 64                           # random search; or `budget` (env steps of the whole sweep)
    seeds: 2                                 # seeds per point: seed, seed+1, ...
    seed: 0                                  # first seed; also seeds the sampling of points
    max_parallel: 32                         # runs per compiled call (bounds memory; default below)
    metric: final_return                     # what the ranking sorts by (or auc)
    space:
      lr: {dist: log_uniform, low: 1.0e-5, high: 1.0e-1}
      ent_coef: {dist: uniform, low: 0.0, high: 0.05}
      clip_eps: [0.1, 0.2, 0.3]              # a list: a choice (random) or a grid axis

Points are grouped by their static fields (shapes, program structure); each
group is compiled once and its (points x seeds) runs are vmapped inside it, in
blocks of `max_parallel` runs that reuse the one compilation. Run (point p,
seed s) uses `PRNGKey(seed + s)`, exactly as `jaxrl train` with that config and
seed, so a sweep point is the same experiment as a single run.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxrl import algos, plots, records
from jaxrl.config import (ConfigError, check_keys, declared_type, fields_of, format_point, format_value, hparams,
                          load_yaml, to_dict)
from jaxrl.stats import bootstrap_ci, nanmean

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
    max_parallel: int = 0  # 0: default_block_size()
    metric: str = "final_return"
    max_compiles: int = 16
    name: str = "sweep"
    raw: dict = dataclasses.field(default_factory=dict)  # the spec as given (saved as spec.yaml)


def _positive_int(data: dict, key: str, default: int, where: str, minimum: int = 1) -> int:
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
    module = algos.get(algo)
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{where}: base must be a mapping of config fields")
    base = dict(base)
    if "env" in data:
        if "env" in base:
            raise ConfigError(f"{where}: env is given both at the top level and in base")
        base["env"] = data["env"]
    check_keys(module.Config, base, f"{where} base")
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where}: space is empty; name at least one config field to sweep")
    check_keys(module.Config, space, f"{where} space")
    for key in RESERVED:
        if key in base or key in space:
            raise ConfigError(f"{where}: {key} is set by the sweep; use the spec's `seed` and `seeds`")
    both = sorted(set(base) & set(space))
    if both:
        raise ConfigError(f"{where}: {', '.join(both)} given both in base and in space")
    fields = {f.name: f for f in dataclasses.fields(module.Config)}
    dims = tuple(parse_dimension(name, entry, fields[name], where) for name, entry in space.items())

    method = data.get("method", "random")
    if method not in ("random", "grid"):
        raise ConfigError(f"{where}: method={method!r} must be 'random' or 'grid'")
    seeds = _positive_int(data, "seeds", 1, where)
    seed = _positive_int(data, "seed", 0, where, minimum=0)
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
        num_points = _points_from_budget(data, module, base, space, seeds, where)
    name = str(data.get("name") or f"{algo}-{str(base.get('env', module.Config.env)).split(':')[-1]}")
    return SweepSpec(algo, base, dims, method, num_points, seeds, seed,
                     _positive_int(data, "max_parallel", 0, where, minimum=0), metric,
                     _positive_int(data, "max_compiles", 16, where), name, dict(data))


def _points_from_budget(data, module, base, space, seeds, where) -> int:
    if "budget" not in data:
        if "num_points" not in data:
            raise ConfigError(f"{where}: random search needs num_points or budget (env steps of the whole sweep)")
        return _positive_int(data, "num_points", 1, where)
    budget = _positive_int(data, "budget", 1, where)
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


@dataclass
class SweepResult:
    sweep_dir: Path | None
    runs: list[dict]  # one row per run (runs.csv)
    ranking: list[dict]  # one row per point, best first
    best_config: Any  # config of the best point (None if no point finished)
    summary: dict
    spec: SweepSpec


def run_sweep(spec: SweepSpec | dict | str | Path, out: str | None = None, progress: bool = True,
              allow_many_compiles: bool = False, record: bool = True, devices: int | None = None) -> SweepResult:
    """Run a sweep; with `record`, write a sweep directory (see README, "Sweeps").
    `devices`: devices sharing each block of runs (None: all; see jaxrl.devices)."""
    from jaxrl import devices as devices_

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    wall_start = time.perf_counter()
    points, configs, groups, programs = _plan(spec, allow_many_compiles)
    devices_.count(devices)  # too many devices: an error before the sweep directory is made
    sweep_dir = records.new_run_dir(out, "sweep", spec.name, root="sweeps") if record else None
    rec = SweepRecord(sweep_dir, spec, points) if record and devices_.is_main() else None
    return _run_groups(spec, points, configs, groups, programs, sweep_dir, rec, progress, devices, [], {},
                       wall_start)


def _plan(spec: SweepSpec, allow_many_compiles: bool):
    """Points, their configs, groups of one compilation each, and the groups' programs (envs built:
    errors before compiling)."""
    module = algos.get(spec.algo)
    points = sample_points(spec)
    configs = [point_config(spec, i, p) for i, p in enumerate(points)]
    groups = group_points(configs)
    check_compile_count(spec, groups, configs, allow_many_compiles)
    return points, configs, groups, [module.make_program(configs[g[0]]) for g in groups]


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / "points.yaml").is_file() and (Path(path) / "spec.yaml").is_file()


def resume_sweep(sweep_dir: str | Path, progress: bool = True, devices: int | None = None) -> SweepResult:
    """Continue a stopped or killed sweep in its directory: groups whose curves are on disk are
    kept, the others run again from their start (a group's blocks are not checkpointed)."""
    from jaxrl import devices as devices_

    wall_start = time.perf_counter()
    sweep_dir = Path(sweep_dir)
    meta = json.loads((sweep_dir / "metadata.json").read_text()) if (sweep_dir / "metadata.json").is_file() else {}
    if meta.get("status") == "finished":
        raise ConfigError(f"sweep {str(sweep_dir)!r} has finished; nothing to resume")
    spec = load_spec(sweep_dir / "spec.yaml")
    points, configs, groups, programs = _plan(spec, allow_many_compiles=True)  # it was accepted when started
    written = yaml.safe_load((sweep_dir / "points.yaml").read_text())
    if [_fmt_point(p) for p in written] != [_fmt_point(p) for p in points]:
        raise ConfigError(f"{str(sweep_dir / 'points.yaml')!r} does not match the points spec.yaml samples "
                          f"(was spec.yaml edited, or jaxrl changed?); start a new sweep instead")
    curves = dict(np.load(sweep_dir / "curves.npz")) if (sweep_dir / "curves.npz").is_file() else {}
    finished = {g for g in range(len(groups)) if f"group{g}_returns" in curves}
    rows = records.read_metrics(sweep_dir / "runs.csv") if (sweep_dir / "runs.csv").is_file() else []
    kept = [_run_row(r, points) for r in rows if int(r["group"]) in finished]
    curves = {k: v for k, v in curves.items() if int(k[len("group"):].split("_")[0]) in finished}
    rec = SweepRecord.reopen(sweep_dir, kept_groups=sorted(finished)) if devices_.is_main() else None
    return _run_groups(spec, points, configs, groups, programs, sweep_dir, rec, progress, devices, kept, curves,
                       wall_start)


def _fmt_point(point: dict) -> dict:
    return {k: format_value(tuple(v) if isinstance(v, list) else v) for k, v in point.items()}


def _run_row(row: dict, points: list[dict]) -> dict:
    """A runs.csv row read back with the types run_sweep wrote it with."""
    number = lambda v, cast: cast(v) if v != "" else ""
    point = int(row["point"])
    return {"run": int(row["run"]), "point": point, "seed": int(row["seed"]), "group": int(row["group"]),
            **{k: _csv_value(v) for k, v in points[point].items()},
            "final_return": number(row["final_return"], float), "auc": number(row["auc"], float),
            "status": row["status"], "diverged_at": number(row["diverged_at"], int)}


def _run_groups(spec, points, configs, groups, programs, sweep_dir, rec, progress, devices, runs: list[dict],
                curves: dict, wall_start: float) -> SweepResult:
    """Run every group not already in `curves` (a resumed sweep's finished groups), then rank and record."""
    import jax
    import jax.numpy as jnp

    from jaxrl import devices as devices_
    from jaxrl import loop
    from jaxrl.progress import Progress
    from jaxrl.session import Session

    resumed_groups = sorted({r["group"] for r in runs})
    todo = [g for g in range(len(groups)) if g not in resumed_groups]
    total_steps = sum(len(groups[g]) * spec.seeds * programs[g].num_updates * programs[g].steps_per_update
                      for g in todo)
    num_runs = len(points) * spec.seeds
    bar = Progress(total_steps, progress, desc="sweep")
    kept = f"; {len(resumed_groups)} finished group(s) kept" if resumed_groups else ""
    bar.message(f"sweep {spec.name}: {len(points)} points x {spec.seeds} seeds = {num_runs} runs in "
                f"{len(groups)} compiled group(s), {total_steps:,} env steps to run{kept}")
    timing = {"compile_s": 0.0, "run_s": 0.0, "compiles": 0, "steps_done": 0}
    best = {"value": -math.inf}
    with records.failures(rec), bar:
        for g in todo:
            indices, program = groups[g], programs[g]
            members = [(p, s) for p in indices for s in range(spec.seeds)]
            num_blocks = -(-len(members) // (spec.max_parallel or default_block_size()))
            block = -(-len(members) // num_blocks)  # balanced blocks: the least padding
            layout = devices_.plan(devices, block, program.env_shards, round_runs=True)
            block = -(-block // layout.num_devices) * layout.num_devices if layout.mode == "runs" else block
            compiled = None
            group_rows, group_curves = [], []
            for start in range(0, len(members), block):
                real = members[start:start + block]
                padded = real + [real[-1]] * (block - len(real))  # same shape for every block: one compilation
                keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray([spec.seed + s for _, s in padded]))
                point_hp = [hparams(configs[p]) for p, _ in padded]
                hp = {k: np.asarray([h[k] for h in point_hp], np.float32) for k in point_hp[0]}
                session = Session(program, keys, hp, layout, compiled=compiled,
                                  resume_hint=f"jaxrl resume {sweep_dir}" if sweep_dir else None)
                if compiled is None:
                    loop.check_memory(program, keys, hp, layout.num_devices)
                    bar.message(f"compiling group {g + 1}/{len(groups)} ({len(members)} runs, {block} at a time) ...")
                    with session:
                        compiled = session.compile()
                    timing["compiles"] += 1
                    timing["compile_s"] += compiled.seconds
                    bar.message(f"  compiled in {compiled.seconds:.1f} s")
                    bar.open()
                done_before = timing["steps_done"]

                def on_chunk(report, real=real, done_before=done_before):
                    rets = records.final_returns(report.metrics, fraction=1.0)[:len(real)]
                    if np.any(np.isfinite(rets)):
                        best["value"] = max(best["value"], float(np.nanmax(rets)))
                    steps = done_before + report.env_steps * len(real)
                    sps = report.env_steps * len(real) / max(report.run_seconds, 1e-9)
                    finished = len(runs) + len(group_rows)
                    bar.update(steps, f"runs {finished}/{num_runs}, {sps / 1e3:,.0f}k steps/s, "
                                      f"best {best['value']:.1f}")

                with session:
                    outcome = session.run(on_chunk)
                metrics, diverged_at, timings = outcome.metrics, outcome.diverged_at, outcome.timings
                timing["run_s"] += timings["run_s"]
                timing["steps_done"] += program.num_updates * program.steps_per_update * len(real)
                metrics = {k: v[:len(real)] for k, v in metrics.items()}
                final = records.final_returns(metrics)
                per_update = records.mean_returns(metrics)
                auc = nanmean(per_update, axis=1)
                for r, (p, s) in enumerate(real):
                    diverged = int(diverged_at[r])
                    group_rows.append({
                        "run": p * spec.seeds + s, "point": p, "seed": spec.seed + s, "group": g,
                        **{k: _csv_value(v) for k, v in points[p].items()},
                        "final_return": _round(final[r]), "auc": _round(auc[r]),
                        "status": "diverged" if diverged >= 0 else "finished",
                        "diverged_at": diverged if diverged >= 0 else "",
                    })
                group_curves.append(per_update.astype(np.float32))
                if rec:  # every finished block is on disk before the next starts
                    rec.write_runs(sorted(runs + group_rows, key=lambda r: r["run"]))
            runs.extend(group_rows)
            curves[f"group{g}_env_steps"] = loop.logged_updates(program) * program.steps_per_update
            curves[f"group{g}_runs"] = np.asarray([r["run"] for r in group_rows])
            curves[f"group{g}_returns"] = np.concatenate(group_curves)
            if rec:
                rec.write_curves(curves)

    runs.sort(key=lambda r: r["run"])
    if rec:
        rec.write_runs(runs)
    ranking = rank_points(spec, points, runs)
    best_config = configs[ranking[0]["point"]] if ranking else None
    summary = {
        "name": spec.name, "algo": spec.algo, "points": len(points), "seeds": spec.seeds, "runs": len(runs),
        "compilations": timing["compiles"], "compile_s": round(timing["compile_s"], 3),
        "run_s": round(timing["run_s"], 3), "env_steps": timing["steps_done"],
        "steps_per_second": round(timing["steps_done"] / max(timing["run_s"], 1e-9)),
        "diverged_runs": sum(r["status"] == "diverged" for r in runs),
        "metric": spec.metric, "best": ranking[0] if ranking else None,
        "resumed_groups": len(resumed_groups),
    }
    if rec:
        rec.write_ranking(ranking)
        if best_config is not None:
            rec.write_best(spec, best_config, ranking[0])
        plots.plot_hparams(sweep_dir / "hparams.png", spec, points, runs)
        plots.plot_top_curves(sweep_dir / "top_curves.png", spec, points, ranking, curves)
        summary["wall_s"] = round(time.perf_counter() - wall_start, 3)
        rec.write_json("summary.json", summary)
        rec.finish("finished")
    return SweepResult(sweep_dir, runs, ranking, best_config, summary, spec)


def _round(x) -> float | str:
    x = float(x)
    return "" if math.isnan(x) else round(x, 4)


def _csv_value(v):
    return format_value(v) if isinstance(v, tuple) else v


def rank_points(spec: SweepSpec, points: list[dict], runs: list[dict]) -> list[dict]:
    """One row per point that ran: mean and 95% bootstrap CI over seeds; points with diverged runs last."""
    by_point: dict[int, list[dict]] = {}
    for r in runs:
        by_point.setdefault(r["point"], []).append(r)
    rows = []
    for p, rs in by_point.items():
        column = lambda name: np.array([r[name] if r[name] != "" else np.nan for r in rs], np.float64)
        values = column(spec.metric)
        low, high = bootstrap_ci(values)
        rows.append({"point": p, **{k: _csv_value(v) for k, v in points[p].items()},
                     "score": _round(nanmean(values)), "ci_low": _round(low), "ci_high": _round(high),
                     "final_return": _round(nanmean(column("final_return"))), "auc": _round(nanmean(column("auc"))),
                     "seeds": len(rs), "diverged": sum(r["status"] == "diverged" for r in rs)})
    number = lambda x: x if x != "" else -math.inf
    # Points with a diverged run last; ties of the metric (CartPole's cap of 500) broken by the faster learner.
    rows.sort(key=lambda r: (r["diverged"] > 0, -number(r["score"]), -number(r["auc"])))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def format_ranking(spec: SweepSpec, ranking: list[dict], top: int = 10, bottom: int = 5) -> str:
    """The ranking as a text table: the best `top` points and the worst `bottom`."""
    names = [d.name for d in spec.space]
    header = ["rank", "point", *names, f"{spec.metric} (mean [95% CI] over seeds)", "status"]
    shown = ranking if len(ranking) <= top + bottom else ranking[:top] + [None] + ranking[-bottom:]
    lines = []
    for row in shown:
        if row is None:
            lines.append(["..."] + [""] * (len(header) - 1))
            continue
        score = "-" if row["score"] == "" else f"{row['score']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        status = f"diverged {row['diverged']}/{row['seeds']}" if row["diverged"] else "ok"
        lines.append([str(row["rank"]), str(row["point"]), *[format_value(row[n]) for n in names], score, status])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


class SweepRecord(records.Record):
    """The sweep directory: spec.yaml, points.yaml, metadata.json, runs.csv, curves.npz, ranking.csv,
    best.yaml, summary.json, hparams.png, top_curves.png (all written atomically)."""

    def __init__(self, path: Path, spec: SweepSpec, points: list[dict]):
        self.path = Path(path)
        self.write_yaml("spec.yaml", spec.raw)
        self.write_yaml("points.yaml", [{k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}
                                        for p in points])
        super().__init__(path)

    def write_runs(self, rows: list[dict]) -> None:
        records.write_csv(self.path / "runs.csv", rows)

    def write_curves(self, curves: dict[str, np.ndarray]) -> None:
        records.save_arrays(self.path / "curves.npz", curves)

    def write_ranking(self, ranking: list[dict]) -> None:
        if ranking:
            records.write_csv(self.path / "ranking.csv", ranking)

    def write_best(self, spec: SweepSpec, config, row: dict) -> None:
        header = (f"# best point of sweep {spec.name!r} (point {row['point']}): {spec.metric} {row['score']} "
                  f"(95% CI {row['ci_low']}..{row['ci_high']}) over seeds {spec.seed}..{spec.seed + spec.seeds - 1}\n"
                  f"# retrain: jaxrl train --config best.yaml\n")
        body = yaml.safe_dump({"algo": spec.algo, **to_dict(config)}, sort_keys=False)
        records.atomic_write(self.path / "best.yaml", header + body)
