"""Population-based training (Jaderberg et al. 2017) inside one compiled program.

A sweep spec (see `jaxrl.sweep.spec`) with a `pbt:` section:

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

from jaxrl import algos, plots, records
from jaxrl.config import ConfigError, fields_of, format_point, stacked_hparams
from jaxrl.stats import nanmean
from jaxrl.sweep import spec as sweep_spec
from jaxrl.sweep.ranking import round_metric

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
    population = sweep_spec.positive_int(data, "population", 16, f"{where} pbt", minimum=2)
    ready = sweep_spec.positive_int(data, "ready", 10, f"{where} pbt")
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
    sweep: sweep_spec.SweepSpec  # algo, base, space (initial distribution), seeds = populations
    settings: PBTSettings


def parse_spec(data: dict, where: str = "pbt spec") -> PBTSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    settings = parse_settings(data.get("pbt"), where)
    for key in ("method", "num_points", "budget", "max_parallel"):
        if key in data:
            raise ConfigError(f"{where}: {key} does not apply to PBT (the population is pbt.population)")
    sweep_part = {k: v for k, v in data.items() if k != "pbt"}  # `jaxrl sweep` refuses a pbt section
    spec = dataclasses.replace(sweep_spec.parse_spec({**sweep_part, "num_points": settings.population}, where),
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


def make_exploit_explore(settings: PBTSettings, num_populations: int, explored: list[str], bounds, program):
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
        hp = dict(program.get_hparams(new))
        choice = jax.random.randint(perturb_key, (source.shape[0], len(explored)), 0, factors.shape[0])
        for j, name in enumerate(explored):
            perturbed = jnp.clip(hp[name] * factors[choice[:, j]], low[j], high[j])
            hp[name] = jnp.where(replaced, perturbed, hp[name])
        new = program.set_hparams(new.replace(key=state.key), hp)  # a copy keeps its own randomness
        return new, jnp.where(replaced, -1, diverged_at[source]), source

    return jax.jit(step)


@dataclass
class PBTResult:
    out_dir: Path | None
    summary: dict
    schedule: list[dict]  # one row per member per exploit step (and the start)
    metrics: dict[str, np.ndarray]  # name -> [members, updates]


def is_pbt_dir(path: str | Path) -> bool:
    meta = Path(path) / "metadata.json"
    return meta.is_file() and records.read_metadata(meta).get("kind") == "pbt"


@dataclass
class _Plan:
    """A PBT run's program and members, the same when it starts and when it resumes."""

    spec: PBTSpec
    algorithm: Any
    configs: list
    program: Any
    keys: Any
    hp: dict
    explored: list[str]
    driver: Any  # session.Driver: exploit/explore between chunks, its schedule checkpointed with the runs

    @property
    def members(self) -> int:
        return len(self.configs)


def _plan(spec: PBTSpec) -> _Plan:
    import jax
    import jax.numpy as jnp

    from jaxrl.session import Driver

    sw, st = spec.sweep, spec.settings
    R, P = sw.seeds, st.population
    algorithm = algos.get(sw.algo)
    explored = [d.name for d in sw.space]
    # Each population draws its own initial hyperparameters.
    points = [p for r in range(R) for p in sweep_spec.sample_points(dataclasses.replace(sw, seed=sw.seed + r))]
    configs = [sweep_spec.point_config(dataclasses.replace(sw, base={**sw.base, "updates_per_chunk": st.ready}), i, p)
               for i, p in enumerate(points)]
    program = algorithm.make_program(configs[0])
    num_chunks = -(-program.num_updates // program.updates_per_chunk)
    if num_chunks < 2:
        raise ConfigError(f"pbt.ready={st.ready} updates leaves no exploit step in a run of {program.num_updates} "
                          f"updates; lower ready or raise total_timesteps")
    seeds = np.repeat(np.arange(sw.seed, sw.seed + R), P)
    keys = jax.vmap(jax.random.fold_in)(jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds)),
                                        jnp.tile(jnp.arange(P), R))
    hp = stacked_hparams(configs)
    exploit_explore = make_exploit_explore(st, R, explored, field_bounds(algorithm.Config, explored), program)
    pbt_key = jax.random.PRNGKey(sw.seed)

    def init():  # the schedule: each exploit step's parents and explored hyperparameters, per member
        return {"parent": jnp.full((num_chunks - 1, R * P), -1, jnp.int32),
                "hparams": {k: jnp.zeros((num_chunks - 1, R * P), jnp.float32) for k in explored}}

    def step(state, diverged_at, metrics, index, schedule):
        if index == num_chunks - 1:
            return state, diverged_at, schedule
        state, diverged_at, source = exploit_explore(jax.random.fold_in(pbt_key, index), state, diverged_at, metrics)
        values = program.get_hparams(state)
        schedule = {"parent": schedule["parent"].at[index].set(source),
                    "hparams": {k: schedule["hparams"][k].at[index].set(values[k]) for k in explored}}
        return state, diverged_at, schedule

    return _Plan(spec, algorithm, configs, program, keys, hp, explored, Driver(init, step))


def _schedule_rows(plan: _Plan, schedule) -> list[dict]:
    """schedule.csv: every member's hyperparameters at the start and after each exploit step done."""
    P, ready, spu = plan.spec.settings.population, plan.spec.settings.ready, plan.program.steps_per_update
    parent, values = np.asarray(schedule["parent"]), {k: np.asarray(v) for k, v in schedule["hparams"].items()}
    rows = [{"population": i // P, "member": i % P, "update": 0, "env_steps": 0, "parent": i % P,
             **{k: float(plan.hp[k][i]) for k in plan.explored}} for i in range(plan.members)]
    for c in range(parent.shape[0]):
        if parent[c, 0] < 0:  # not reached yet
            break
        rows.extend({"population": i // P, "member": i % P, "update": (c + 1) * ready, "env_steps": (c + 1) * ready * spu,
                     "parent": int(parent[c, i] % P), **{k: float(values[k][c, i]) for k in plan.explored}}
                    for i in range(plan.members))
    return rows


def run_pbt(spec: PBTSpec | dict | str | Path, out: str | None = None, progress: bool = True,
            record: bool = True, devices: int | None = None, checkpoint_every: int | str = "5m") -> PBTResult:
    """Run PBT; with `record`, a directory with the schedule, curves, and checkpoints of all members and
    the schedule (`jaxrl resume DIR` continues it, `jaxrl eval DIR` evaluates every member)."""
    from jaxrl import devices as devices_
    from jaxrl import loop
    from jaxrl.config import to_dict
    from jaxrl.session import parse_every

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    parse_every(checkpoint_every)
    wall_start = time.perf_counter()
    plan = _plan(spec)
    layout = devices_.plan(devices, plan.members, plan.program.env_shards)
    loop.check_memory(plan.program, plan.keys, plan.hp, layout.num_devices)
    out_dir = records.new_run_dir(out, "pbt", spec.sweep.name, root="sweeps") if record else None
    rec = None
    if record and devices_.is_main():
        rec = records.Record(out_dir, kind="pbt", checkpoint_every=checkpoint_every, **layout.describe())
        rec.write_yaml("spec.yaml", spec.sweep.raw)
        # What `jaxrl eval` and `load_policy` read: the members' shared static config, one "seed" per member.
        rec.write_yaml("config.yaml", {"algo": plan.algorithm.name, **to_dict(dataclasses.replace(
            plan.configs[0], seed=0, num_seeds=plan.members))})
    return _execute(plan, layout, out_dir, rec, progress, checkpoint_every, None, wall_start)


def resume_pbt(out_dir: str | Path, progress: bool = True, devices: int | None = None) -> PBTResult:
    """Continue a stopped PBT run from its latest checkpoint (all members and the schedule so far)."""
    from jaxrl import checkpoint
    from jaxrl import devices as devices_

    wall_start = time.perf_counter()
    out_dir = Path(out_dir)
    meta = records.unfinished(out_dir, "pbt run")
    spec = load_spec(out_dir / "spec.yaml")
    plan = _plan(spec)
    step, _ = checkpoint.restore_info(out_dir / "checkpoints", None)
    layout = devices_.plan(devices, plan.members, plan.program.env_shards)
    rec = records.Record.reopen(out_dir, from_update=step) if devices_.is_main() else None
    return _execute(plan, layout, out_dir, rec, progress, meta.get("checkpoint_every") or "5m", step, wall_start)


def _execute(plan: _Plan, layout, out_dir, rec, progress, checkpoint_every, start_step, wall_start) -> PBTResult:
    from jaxrl import loop
    from jaxrl.config import to_dict
    from jaxrl.progress import Progress
    from jaxrl.session import Checkpoints, Session, checkpoint_info

    spec, program = plan.spec, plan.program
    sw, st = spec.sweep, spec.settings
    R, P = sw.seeds, st.population
    steps_per_chunk = program.updates_per_chunk * program.steps_per_update
    bar = Progress(R * P * program.num_updates * program.steps_per_update, progress, desc="pbt")
    best = {"value": -math.inf}

    def on_chunk(report):
        rets = records.final_returns(report.metrics, fraction=1.0)
        if np.any(np.isfinite(rets)):
            best["value"] = max(best["value"], float(np.nanmax(rets)))
        sps = report.env_steps * R * P / max(report.run_seconds, 1e-9)
        bar.update(report.env_steps * R * P, f"{sps / 1e3:,.0f}k steps/s, best member {best['value']:.1f}")

    checkpoints = Checkpoints(out_dir / "checkpoints", checkpoint_every, 2,
                              checkpoint_info(plan.algorithm.name, to_dict(plan.configs[0])),
                              plan.algorithm.policy_state) if out_dir else None
    on_abort = (lambda status, message: rec.finish(status, message)) if rec else None
    session = Session(program, plan.keys, plan.hp, layout, checkpoints, plan.driver, on_abort,
                      resume_hint=f"jaxrl resume {out_dir}" if out_dir else None)
    with records.failures(rec), bar, session:
        start = session.restore(start_step) if start_step is not None else None
        bar.message(f"pbt {sw.name}: {R} population(s) x {P} members, exploit/explore every {st.ready} updates "
                    f"({steps_per_chunk:,} env steps), exploring {', '.join(plan.explored)}")
        bar.compiling(f"{R * P} members" + (f", resuming after update {start_step}" if start else ""))
        bar.compiled(session.compile().seconds)
        out = session.run(on_chunk, start)

    metrics, diverged_at, timings = out.metrics, out.diverged_at, out.timings
    schedule = _schedule_rows(plan, out.driver_state)
    final = records.final_returns(metrics).reshape(R, P)
    best_member = [int(np.nanargmax(np.nan_to_num(f, nan=-np.inf))) for f in final]
    last = {(row["population"], row["member"]): row for row in schedule}  # hyperparameters at the end
    first = start_step or 0
    summary = {
        "name": sw.name, "algo": sw.algo, "populations": R, "population": P, "ready": st.ready,
        "fraction": st.fraction, "perturb": list(st.perturb), "explored": plan.explored,
        "env_steps_per_member": program.num_updates * program.steps_per_update,
        "best_final_return_per_population": [round_metric(final[r, m]) for r, m in enumerate(best_member)],
        "best_final_return_mean": round_metric(np.mean([final[r, m] for r, m in enumerate(best_member)])),
        "population_final_return_mean": round_metric(nanmean(final)),
        "best_member_final_hparams": [{k: last[(r, m)][k] for k in plan.explored} for r, m in enumerate(best_member)],
        "diverged_members": int((diverged_at >= 0).sum()),
        "compile_s": round(timings["compile_s"], 3), "run_s": round(timings["run_s"], 3),
        "steps_per_second": round(R * P * (program.num_updates - first) * program.steps_per_update / timings["run_s"]),
    }
    if start_step is not None:
        summary["resumed_from_update"] = start_step
    if rec:
        records.write_csv(out_dir / "schedule.csv", schedule)
        returns = records.mean_returns(metrics).astype(np.float32)
        records.save_arrays(out_dir / "curves.npz", {
            "env_steps": loop.logged_updates(program) * program.steps_per_update,
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
