"""Population-based training (Jaderberg et al. 2017) inside one compiled program.

A sweep spec (see `jaxrl.sweep`) with a `pbt:` section:

    algo: ppo
    env: gymnax:CartPole-v1
    base: {total_timesteps: 100000, anneal_lr: false}
    seeds: 2                      # independent populations, trained together
    space:                        # dynamic hyperparameters: initial distribution, then explored
      lr: {dist: log_uniform, low: 1.0e-4, high: 1.0e-2}
    pbt:
      population: 16              # members per population
      ready: 10                   # updates between exploit/explore steps
      fraction: 0.25              # bottom fraction replaced by copies of the top fraction
      perturb: [0.8, 1.2]         # each explored hyperparameter is multiplied by one of these

All members of all populations are one vmapped program; every `ready` updates
a compiled step on the device ranks each population by the mean return of the
episodes finished since the last step, copies the whole runner state (weights,
optimiser state, env states, normaliser statistics; not the PRNG key) of a
random top member into each bottom member, and perturbs the copy's explored
hyperparameters (clipped to the field's valid range).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxrl import algos, plots, records, sweep
from jaxrl.config import ConfigError, fields_of, format_point, hparams
from jaxrl.stats import nanmean

PBT_KEYS = ("population", "ready", "fraction", "perturb")


@dataclass(frozen=True)
class PBTSettings:
    population: int = 16
    ready: int = 10
    fraction: float = 0.25
    perturb: tuple = (0.8, 1.2)


def parse_settings(data: Any, where: str) -> PBTSettings:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: needs a `pbt:` section (population, ready, fraction, perturb)")
    unknown = [k for k in data if k not in PBT_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown pbt key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(PBT_KEYS)}")
    population = sweep._positive_int(data, "population", 16, f"{where} pbt", minimum=2)
    ready = sweep._positive_int(data, "ready", 10, f"{where} pbt")
    fraction = data.get("fraction", 0.25)
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 0.5:
        raise ConfigError(f"{where}: pbt.fraction={fraction!r} must be in (0, 0.5]")
    if int(fraction * population) < 1:
        raise ConfigError(f"{where}: pbt.fraction={fraction} of population={population} replaces no member "
                          f"(needs fraction*population >= 1)")
    perturb = data.get("perturb", [0.8, 1.2])
    if (not isinstance(perturb, list) or not perturb
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and 0 < f < math.inf
                       for f in perturb)):
        raise ConfigError(f"{where}: pbt.perturb={perturb!r} must be a list of positive factors (finite numbers)")
    return PBTSettings(population, ready, float(fraction), tuple(float(f) for f in perturb))


@dataclass(frozen=True)
class PBTSpec:
    sweep: sweep.SweepSpec  # algo, base, space (initial distribution), seeds = populations
    settings: PBTSettings


def parse_spec(data: dict, where: str = "pbt spec") -> PBTSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    settings = parse_settings(data.get("pbt"), where)
    for key in ("method", "num_points", "budget", "max_parallel"):
        if key in data:
            raise ConfigError(f"{where}: {key} does not apply to PBT (the population is pbt.population)")
    sweep_part = {k: v for k, v in data.items() if k != "pbt"}  # `jaxrl sweep` refuses a pbt section
    spec = dataclasses.replace(sweep.parse_spec({**sweep_part, "num_points": settings.population}, where),
                               raw=dict(data))
    dynamic = {f.name for f in fields_of(algos.get(spec.algo).Config, "dynamic")}
    static = [d.name for d in spec.space if d.name not in dynamic]
    if static:
        raise ConfigError(f"{where}: PBT explores dynamic hyperparameters only; {', '.join(static)} changes the "
                          f"compiled program (dynamic fields: {', '.join(sorted(dynamic))})")
    return PBTSpec(spec, settings)


def load_spec(path: str | Path) -> PBTSpec:
    from jaxrl.config import load_yaml

    return parse_spec(load_yaml(path, "pbt spec"), f"pbt spec {str(path)!r}")


def field_bounds(config_cls, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Valid range of each explored hyperparameter (open lower bounds become the next float32 up)."""
    low, high = [], []
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    for name in names:
        meta = fields[name].metadata
        lo = -np.inf if meta["low"] is None else float(meta["low"])
        if meta["low_open"]:
            lo = float(np.nextafter(np.float32(lo), np.float32(np.inf)))
        low.append(lo)
        high.append(np.inf if meta["high"] is None else float(meta["high"]))
    return np.asarray(low, np.float32), np.asarray(high, np.float32)


def make_exploit_explore(settings: PBTSettings, num_populations: int, explored: list[str], bounds):
    """`step(key, state, diverged_at, metrics) -> (state, diverged_at, source)`, batched over all members.

    `source[i]` is the member whose state member i continues from (itself if kept).
    """
    import jax
    import jax.numpy as jnp

    P = settings.population
    n = int(settings.fraction * P)
    factors = jnp.asarray(settings.perturb, jnp.float32)
    low, high = (jnp.asarray(b) for b in bounds)

    def step(key, state, diverged_at, metrics):
        count = jnp.nan_to_num(metrics["episodes"]).sum(1)
        total = jnp.nan_to_num(metrics["episode_return_sum"]).sum(1)
        score = jnp.where((count > 0) & (diverged_at < 0), total / jnp.maximum(count, 1), -jnp.inf)
        order = jnp.argsort(score.reshape(num_populations, P), axis=1)  # worst first
        donor_key, perturb_key = jax.random.split(key)
        donors = jnp.take_along_axis(order[:, P - n:], jax.random.randint(donor_key, (num_populations, n), 0, n),
                                     axis=1)
        local = jnp.tile(jnp.arange(P), (num_populations, 1))
        local = local.at[jnp.arange(num_populations)[:, None], order[:, :n]].set(donors)
        source = (local + P * jnp.arange(num_populations)[:, None]).reshape(-1)
        replaced = source != jnp.arange(source.shape[0])
        new = jax.tree.map(lambda x: x[source], state)
        hp = dict(new.hparams)
        choice = jax.random.randint(perturb_key, (source.shape[0], len(explored)), 0, factors.shape[0])
        for j, name in enumerate(explored):
            perturbed = jnp.clip(hp[name] * factors[choice[:, j]], low[j], high[j])
            hp[name] = jnp.where(replaced, perturbed, hp[name])
        new = new.replace(key=state.key, hparams=hp)  # a copy keeps its own randomness
        return new, jnp.where(replaced, -1, diverged_at[source]), source

    return jax.jit(step)


@dataclass
class PBTResult:
    out_dir: Path | None
    summary: dict
    schedule: list[dict]  # one row per member per exploit step (and the start)
    metrics: dict[str, np.ndarray]  # name -> [members, updates]


def run_pbt(spec: PBTSpec | dict | str | Path, out: str | None = None, progress: bool = True,
            record: bool = True, devices: int | None = None) -> PBTResult:
    import jax
    import jax.numpy as jnp

    from jaxrl import devices as devices_
    from jaxrl import loop
    from jaxrl.progress import Progress

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    wall_start = time.perf_counter()
    sw, st = spec.sweep, spec.settings
    R, P = sw.seeds, st.population
    module = algos.get(sw.algo)
    explored = [d.name for d in sw.space]
    # Each population draws its own initial hyperparameters.
    points = [p for r in range(R) for p in sweep.sample_points(dataclasses.replace(sw, seed=sw.seed + r))]
    configs = [sweep.point_config(dataclasses.replace(sw, base={**sw.base, "updates_per_chunk": st.ready}), i, p)
               for i, p in enumerate(points)]
    program = module.make_program(configs[0])
    num_chunks = -(-program.num_updates // program.updates_per_chunk)
    if num_chunks < 2:
        raise ConfigError(f"pbt.ready={st.ready} updates leaves no exploit step in a run of {program.num_updates} "
                          f"updates; lower ready or raise total_timesteps")
    seeds = np.repeat(np.arange(sw.seed, sw.seed + R), P)
    keys = jax.vmap(jax.random.fold_in)(jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds)),
                                        jnp.tile(jnp.arange(P), R))
    point_hp = [hparams(c) for c in configs]
    hp = {k: np.asarray([h[k] for h in point_hp], np.float32) for k in point_hp[0]}
    step = make_exploit_explore(st, R, explored, field_bounds(module.Config, explored))

    layout = devices_.plan(devices, R * P, program.env_shards)
    loop.check_memory(program, keys, hp, layout.num_devices)
    out_dir = records.new_run_dir(out, "pbt", sw.name, root="sweeps") if record else None
    rec = records.Record(out_dir, **layout.describe()) if record and devices_.is_main() else None
    if rec:
        rec.write_yaml("spec.yaml", sw.raw)
    steps_per_chunk = program.updates_per_chunk * program.steps_per_update
    schedule = [{"population": int(i // P), "member": int(i % P), "update": 0, "env_steps": 0, "parent": int(i % P),
                 **{k: float(hp[k][i]) for k in explored}} for i in range(R * P)]
    pbt_key = jax.random.PRNGKey(sw.seed)

    def between_chunks(state, diverged_at, metrics, index):
        if index == num_chunks - 1:
            return state, diverged_at
        state, diverged_at, source = step(jax.random.fold_in(pbt_key, index), state, diverged_at, metrics)
        source, values = layout.to_host((source, {k: state.hparams[k] for k in explored}))
        update = (index + 1) * program.updates_per_chunk
        schedule.extend({"population": int(i // P), "member": int(i % P), "update": update,
                         "env_steps": update * program.steps_per_update, "parent": int(source[i] % P),
                         **{k: float(values[k][i]) for k in explored}} for i in range(R * P))
        return state, diverged_at

    bar = Progress(R * P * program.num_updates * program.steps_per_update, progress, desc="pbt")
    best = {"value": -math.inf}

    def on_chunk(report):
        rets = records.final_returns(report.metrics, fraction=1.0)
        if np.any(np.isfinite(rets)):
            best["value"] = max(best["value"], float(np.nanmax(rets)))
        sps = report.env_steps * R * P / max(report.run_seconds, 1e-9)
        bar.update(report.env_steps * R * P, f"{sps / 1e3:,.0f}k steps/s, best member {best['value']:.1f}")

    with records.failures(rec), bar:
        bar.message(f"pbt {sw.name}: {R} population(s) x {P} members, exploit/explore every {st.ready} updates "
                    f"({steps_per_chunk:,} env steps), exploring {', '.join(explored)}")
        bar.compiling(f"{R * P} members")
        _, metrics, diverged_at, timings = loop.run(program, keys, hp, bar.compiled, on_chunk,
                                                    between_chunks=between_chunks, layout=layout)

    final = records.final_returns(metrics).reshape(R, P)
    best_member = [int(np.nanargmax(np.nan_to_num(f, nan=-np.inf))) for f in final]
    last = {(row["population"], row["member"]): row for row in schedule}  # hyperparameters at the end
    summary = {
        "name": sw.name, "algo": sw.algo, "populations": R, "population": P, "ready": st.ready,
        "fraction": st.fraction, "perturb": list(st.perturb), "explored": explored,
        "env_steps_per_member": program.num_updates * program.steps_per_update,
        "best_final_return_per_population": [sweep._round(final[r, m]) for r, m in enumerate(best_member)],
        "best_final_return_mean": sweep._round(np.mean([final[r, m] for r, m in enumerate(best_member)])),
        "population_final_return_mean": sweep._round(nanmean(final)),
        "best_member_final_hparams": [{k: last[(r, m)][k] for k in explored} for r, m in enumerate(best_member)],
        "diverged_members": int((diverged_at >= 0).sum()),
        "compile_s": round(timings["compile_s"], 3), "run_s": round(timings["run_s"], 3),
        "steps_per_second": round(R * P * program.num_updates * program.steps_per_update / timings["run_s"]),
    }
    if rec:
        records.write_csv(out_dir / "schedule.csv", schedule)
        returns = records.mean_returns(metrics).astype(np.float32)
        records.save_arrays(out_dir / "curves.npz", {
            "env_steps": (np.arange(program.num_updates) + 1) * program.steps_per_update,
            "returns": returns.reshape(R, P, -1)})
        plots.plot_schedules(out_dir / "schedules.png", spec, schedule, metrics, program.steps_per_update)
        summary["wall_s"] = round(time.perf_counter() - wall_start, 3)
        rec.write_json("summary.json", summary)
        rec.finish("finished")
    return PBTResult(out_dir, summary, schedule, metrics)


def format_result(result: PBTResult) -> str:
    s = result.summary
    lines = [f"pbt {s['name']}: {s['populations']} population(s) x {s['population']} members, "
             f"{s['env_steps_per_member']:,} env steps each; compile {s['compile_s']:.1f} s, run {s['run_s']:.1f} s, "
             f"{s['steps_per_second']:,} steps/s",
             f"  best member final return per population: {s['best_final_return_per_population']} "
             f"(mean {s['best_final_return_mean']}); population mean {s['population_final_return_mean']}"]
    for r, hp in enumerate(s["best_member_final_hparams"]):
        lines.append(f"  population {r}: best member ends with {format_point(hp)}")
    return "\n".join(lines)
