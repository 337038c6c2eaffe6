"""Meta-learning a policy objective by evolution strategies over whole training runs (`jaxrl meta SPEC.yaml`).

The outer loop evolves a learned objective's drift parameters phi (`jaxrl.losses`: LPO, Lu et al. 2022; TA-LPO,
Jackson et al. 2024) with OpenAI-ES (evosax `Open_ES`, antithetic sampling, centred-rank fitness shaping, Adam
on the ES mean). A spec:

    algo: ppo
    env: gymnax:CartPole-v1
    base: {objective: lpo, total_timesteps: 40000, num_envs: 8, num_steps: 64}  # the inner runs
    population: 32        # even: member i and i + population/2 are an antithetic pair
    shared_seeds: population  # which members train from the same keys: all of a generation, or antithetic pairs
    seeds_per_member: 1   # inner runs per member (each from its own key); its fitness is their mean
    fitness: final        # a run's return: final (its last tenth) or auc (its whole learning curve)
    generations: 20
    sigma: 0.03           # ES noise standard deviation
    lr: 0.01              # Adam step size of the ES mean
    init_std: 0.1         # the ES mean starts at the config's drift plus this much Gaussian noise
    seed: 0

One generation is the whole population x seeds_per_member inner runs vmapped in one compiled program, run
through the session (`jaxrl.session.Session`; compiled once, reused by every generation). With `shared_seeds:
population` (common random numbers, as the LPO reference code does) every member of a generation trains from
the same keys, new ones each generation, so members are ranked on their drift rather than on their seed; with
`pairs` only an antithetic pair shares keys. A run's return is, with `fitness: final`, the mean return of the
episodes finished in the last `FITNESS_FRACTION` of it; with `fitness: auc`, the mean over its updates of their
mean episode return (the area under its learning curve), which rewards learning fast and, on CartPole, tells
drifts apart better from the same keys. A member's fitness is the mean over its runs; evosax minimises, so it
is told -fitness.
After every generation the directory holds the meta curve (meta_curve.csv), the ES state, the best member's phi
and the ES mean (`best_drift.npz`, `mean_drift.npz`: `jaxrl train --set objective=PATH`); at the end, plots of
the meta curve and of the learned drift beside PPO's. `jaxrl resume DIR` continues from the last finished
generation, exactly as the uninterrupted run would.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jaxrl import plots, records
from jaxrl.config import ConfigError, hparams, load_yaml, stacked_hparams
from jaxrl.sweep.spec import positive_int

SPEC_KEYS = ("name", "algo", "env", "base", "population", "shared_seeds", "seeds_per_member", "fitness",
             "generations", "sigma", "lr", "init_std", "seed")
SHARED_SEEDS = ("population", "pairs")  # which members of a generation train from the same keys
FITNESS = ("final", "auc")  # a run's return: its final return, or the mean of its whole learning curve
FITNESS_FRACTION = 0.1  # fitness: final, a run's return: mean return of the episodes of its last tenth
MIN_POPULATION = 4


@dataclass(frozen=True)
class MetaSpec:
    name: str
    algo: str
    base: dict  # the inner runs' config fields (env included)
    population: int
    shared_seeds: str
    seeds_per_member: int
    fitness: str
    generations: int
    sigma: float
    lr: float
    init_std: float
    seed: int
    raw: dict

    def config(self, where: str = "meta spec"):
        """The inner runs' validated config (one seed each: the population are the runs)."""
        from jaxrl.algos import resolve_config

        try:
            return resolve_config(self.algo, overrides={**self.base, "seed": 0, "num_seeds": 1})
        except ConfigError as err:
            raise ConfigError(f"{where} base: {err}") from None


def _positive_float(data: dict, key: str, default: float, where: str, zero: bool = False) -> float:
    value = data.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{where}: {key}={value!r} must be a finite number {'>=' if zero else '>'} 0")
    return float(value)


def parse_spec(data: Any, where: str = "meta spec") -> MetaSpec:
    """A checked spec; every mistake is a one-line ConfigError before anything compiles."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    unknown = [k for k in data if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(SPEC_KEYS)}")
    algo = data.get("algo", "ppo")
    base = data.get("base", {})
    if not isinstance(base, dict):
        raise ConfigError(f"{where}: base must be a mapping of config fields, got {type(base).__name__}")
    if "env" in data:
        base = {**base, "env": data["env"]}
    for key in ("seed", "num_seeds"):
        if key in base:
            raise ConfigError(f"{where}: base.{key} is set by the meta loop (the spec's seed; one run per member)")
    population = positive_int(data, "population", 32, where, minimum=MIN_POPULATION)
    if population % 2:
        raise ConfigError(f"{where}: population={population} must be even (antithetic pairs)")
    shared_seeds = data.get("shared_seeds", "population")
    if shared_seeds not in SHARED_SEEDS:
        raise ConfigError(f"{where}: shared_seeds={shared_seeds!r} must be one of {', '.join(SHARED_SEEDS)}")
    fitness = data.get("fitness", "final")
    if fitness not in FITNESS:
        raise ConfigError(f"{where}: fitness={fitness!r} must be one of {', '.join(FITNESS)}")
    spec = MetaSpec(
        name=str(data.get("name", "meta")), algo=algo if isinstance(algo, str) else repr(algo), base=dict(base),
        population=population, shared_seeds=shared_seeds,
        seeds_per_member=positive_int(data, "seeds_per_member", 1, where), fitness=fitness,
        generations=positive_int(data, "generations", 10, where),
        sigma=_positive_float(data, "sigma", 0.03, where), lr=_positive_float(data, "lr", 0.01, where),
        init_std=_positive_float(data, "init_std", 0.1, where, zero=True),
        seed=positive_int(data, "seed", 0, where, minimum=0), raw=dict(data))
    config = spec.config(where)
    if "drift" not in hparams(config):
        raise ConfigError(f"{where}: meta-learning evolves a learned objective, and this {algo} config has none: "
                          f"set base.objective to lpo or ta_lpo (or the path of a saved drift)")
    return spec


def load_spec(path: str | Path) -> MetaSpec:
    return parse_spec(load_yaml(path, "meta spec"), f"meta spec {str(path)!r}")


def is_meta_dir(path: str | Path) -> bool:
    meta = Path(path) / "metadata.json"
    return meta.is_file() and records.read_metadata(meta).get("kind") == "meta"


@dataclass
class MetaResult:
    out_dir: Path | None
    summary: dict
    curve: list[dict]  # one row per generation: fitness mean, median, best, worst


@dataclass
class _Plan:
    """The ES and the inner program, the same when a meta run starts and when it resumes."""

    spec: MetaSpec
    config: Any
    program: Any
    strategy: Any  # evosax Open_ES over the drift parameters
    es_params: Any
    base_hp: dict  # the inner config's hparams, one entry per inner run; the drift is replaced by its member's
    es_key: Any
    run_key: Any

    def initial_es_state(self):
        import jax

        drift = hparams(self.config)["drift"]
        noise_keys = jax.random.split(jax.random.fold_in(self.es_key, 0), len(drift))
        mean = {k: np.asarray(v) + self.spec.init_std * np.asarray(jax.random.normal(nk, np.shape(v)))
                for nk, (k, v) in zip(noise_keys, sorted(drift.items()))}
        return self.strategy.init(jax.random.fold_in(self.es_key, 0), mean, self.es_params)

    @property
    def num_runs(self) -> int:
        return self.spec.population * self.spec.seeds_per_member

    def member_keys(self, generation: int):
        """[seeds_per_member * P] keys, run j * P + i being member i's j-th run. Under `population` all members'
        j-th runs share one key; under `pairs` member i and i + P/2 (an antithetic pair, evosax's order) do."""
        import jax
        import jax.numpy as jnp

        P = self.spec.population
        groups = 1 if self.spec.shared_seeds == "population" else P // 2
        index = jnp.arange(self.spec.seeds_per_member)[:, None] * groups + jnp.arange(P)[None, :] % groups
        return jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(self.run_key, generation),
                                                       index.reshape(-1))

    def runs_of(self, population):
        """The members' drifts, one per inner run (member_keys' order)."""
        import jax
        import jax.numpy as jnp

        return jax.tree.map(lambda x: jnp.concatenate([x] * self.spec.seeds_per_member), population)


def _plan(spec: MetaSpec) -> _Plan:
    import jax
    import optax
    from evosax.algorithms import Open_ES

    from jaxrl import algos

    config = spec.config()
    program = algos.of_config(config).make_program(config)
    drift = hparams(config)["drift"]
    strategy = Open_ES(spec.population, drift, use_antithetic_sampling=True, optimizer=optax.adam(spec.lr),
                       std_schedule=optax.constant_schedule(spec.sigma))
    base_hp = stacked_hparams([config] * (spec.population * spec.seeds_per_member))
    es_key, run_key = jax.random.split(jax.random.PRNGKey(spec.seed))
    return _Plan(spec, config, program, strategy, strategy.default_params, base_hp, es_key, run_key)


def fitness_of(metrics: dict[str, np.ndarray], population: int, fitness: str = "final") -> np.ndarray:
    """[members]: the mean over a member's runs (member_keys' order) of each run's return: with `final` the mean
    return of the episodes in its last FITNESS_FRACTION, with `auc` the mean over its updates of their mean
    episode return (NaN: one of its runs finished none, or diverged)."""
    returns = records.final_returns(metrics, FITNESS_FRACTION) if fitness == "final" \
        else records.curve_mean_returns(metrics)
    return returns.reshape(-1, population).mean(0)


def _save_es_state(path: Path, state, generation: int) -> None:
    import jax

    leaves = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
    records.save_arrays(path, {"generation": np.int64(generation), **leaves})


def _load_es_state(path: Path, like) -> tuple[Any, int]:
    import jax

    with np.load(path) as data:
        leaves = [data[f"leaf_{i}"] for i in range(len(jax.tree.leaves(like)))]
        generation = int(data["generation"])
    return jax.tree.unflatten(jax.tree.structure(like), leaves), generation


def _curve_row(row: dict) -> dict:
    """A meta_curve.csv row read back as the numbers it was written from."""
    return {k: int(v) if k in ("generation", "env_steps", "failed") else float(v) for k, v in row.items()}


def best_and_mean(plan: _Plan, es_state) -> tuple[dict, dict]:
    """The drift of the best member so far, and the ES mean."""
    return plan.strategy._unravel_solution(es_state.best_solution), plan.strategy.get_mean(es_state)


def save_generation(out_dir: Path, plan: _Plan, es_state, generation: int, curve: list[dict]) -> None:
    """What a finished generation leaves: the best and mean drift, the meta curve, and the ES state (what resume
    reads; written last, it marks the generation finished)."""
    from jaxrl.losses import save_drift

    best, mean = best_and_mean(plan, es_state)
    save_drift(out_dir / "best_drift.npz", best)
    save_drift(out_dir / "mean_drift.npz", mean)
    records.write_csv(out_dir / "meta_curve.csv", curve)
    _save_es_state(out_dir / "es_state.npz", es_state, generation + 1)


def plot_run(out_dir: Path, plan: _Plan, es_state, curve: list[dict]) -> None:
    """meta_curve.png and drift.png (at the end of a run: a plot costs about as much as a short generation)."""
    plots.plot_meta_curve(out_dir / "meta_curve.png", curve, plan.spec.name,
                          "final return" if plan.spec.fitness == "final" else "mean return over the run")
    best, mean = best_and_mean(plan, es_state)
    clip_eps = float(plan.config.clip_eps)
    plots.plot_drift(out_dir / "drift.png", {"best member": best, "ES mean": mean}, clip_eps,
                     f"{plan.spec.name}: learned drift after {len(curve)} generations beside PPO's (clip_eps "
                     f"{clip_eps:g})")


def run_meta(spec: MetaSpec | dict | str | Path, out: str | None = None, progress: bool | str = True,
             record: bool = True, devices: int | None = None,
             on_generation: Callable[[dict], None] | None = None) -> MetaResult:
    """Run the meta loop; with `record`, a directory `jaxrl resume` continues. `on_generation(row)` is called
    after each generation with its meta-curve row."""
    from jaxrl import devices as devices_
    from jaxrl import loop
    from jaxrl.config import to_dict

    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif isinstance(spec, dict):
        spec = parse_spec(spec)
    wall_start = time.perf_counter()
    plan = _plan(spec)
    layout = devices_.plan(devices, plan.num_runs, plan.program.env_shards)
    loop.check_memory(plan.program, plan.member_keys(0), plan.base_hp, layout.num_devices)
    out_dir = records.new_run_dir(out, "meta", spec.name, root="sweeps") if record else None
    rec = None
    if record and devices_.is_main():
        rec = records.Record(out_dir, kind="meta", **layout.describe())
        rec.write_yaml("spec.yaml", spec.raw)
        rec.write_yaml("config.yaml", {"algo": spec.algo, **to_dict(plan.config)})
    return _execute(plan, layout, out_dir, rec, progress, plan.initial_es_state(), 0, [], on_generation, wall_start)


def resume_meta(out_dir: str | Path, progress: bool | str = True, devices: int | None = None,
                on_generation: Callable[[dict], None] | None = None) -> MetaResult:
    """Continue a stopped meta run from its last finished generation."""
    from jaxrl import devices as devices_

    wall_start = time.perf_counter()
    out_dir = Path(out_dir)
    records.unfinished(out_dir, "meta run")
    spec = load_spec(out_dir / "spec.yaml")
    plan = _plan(spec)
    es_state, generation = plan.initial_es_state(), 0
    curve = []
    if (out_dir / "es_state.npz").is_file():
        es_state, generation = _load_es_state(out_dir / "es_state.npz", es_state)
        curve = [_curve_row(row) for row in records.read_metrics(out_dir / "meta_curve.csv")[:generation]]
    layout = devices_.plan(devices, plan.num_runs, plan.program.env_shards)
    rec = records.Record.reopen(out_dir, from_generation=generation) if devices_.is_main() else None
    return _execute(plan, layout, out_dir, rec, progress, es_state, generation, curve, on_generation, wall_start)


def _execute(plan: _Plan, layout, out_dir, rec, progress, es_state, first: int, curve: list[dict],
             on_generation, wall_start) -> MetaResult:
    import jax
    import jax.numpy as jnp

    from jaxrl.errors import Preempted
    from jaxrl.progress import Progress
    from jaxrl.session import Session

    spec, program, strategy = plan.spec, plan.program, plan.strategy
    P = spec.population
    steps_per_generation = plan.num_runs * program.num_updates * program.steps_per_update
    bar = Progress((spec.generations - first) * steps_per_generation, progress, desc="meta")
    compiled, timings = None, {"compile_s": 0.0, "run_s": 0.0}
    with records.failures(rec), bar:
        bar.message(f"meta {spec.name}: {spec.generations} generations x {P} inner {spec.algo} runs of "
                    f"{program.num_updates * program.steps_per_update:,} steps on {plan.config.env}"
                    + (f", {spec.seeds_per_member} runs per member" if spec.seeds_per_member > 1 else "")
                    + f", keys shared by {'all members' if spec.shared_seeds == 'population' else 'pairs'}"
                    + (f", resuming after generation {first}" if first else ""))
        for generation in range(first, spec.generations):
            population, es_state = strategy.ask(jax.random.fold_in(plan.es_key, 2 * generation + 1), es_state,
                                                plan.es_params)
            hp = plan.base_hp | {"drift": plan.runs_of(population)}
            session = Session(program, plan.member_keys(generation), hp, layout, compiled=compiled)
            done_before = (generation - first) * steps_per_generation

            def on_chunk(report, done_before=done_before, generation=generation):
                bar.update(done_before + report.env_steps * plan.num_runs, f"generation {generation + 1}/{spec.generations}")

            try:
                with session:
                    if compiled is None:
                        bar.compiling(f"{plan.num_runs} inner runs")
                        compiled = session.compile()
                        bar.compiled(compiled.seconds)
                        timings["compile_s"] = compiled.seconds
                    out = session.run(on_chunk)
            except Preempted as err:  # the session saves nothing: the finished generations are the checkpoints
                kept = f"generations 1-{generation} are saved; resume with: jaxrl resume {out_dir}" \
                    if generation and out_dir else "no generation finished, nothing to resume"
                raise Preempted(f"{str(err).split(';')[0]} in generation {generation + 1}; {kept}",
                                err.signum) from None
            timings["run_s"] += out.timings["run_s"]
            fitness = fitness_of(out.metrics, P, spec.fitness)
            # evosax minimises; a member without a finished episode (or diverged) ranks last
            es_state, _ = strategy.tell(jax.random.fold_in(plan.es_key, 2 * generation + 2), population,
                                        jnp.asarray(np.where(np.isnan(fitness), np.inf, -fitness), jnp.float32),
                                        es_state, plan.es_params)
            finite = fitness[np.isfinite(fitness)]
            row = {"generation": generation + 1, "env_steps": (generation + 1) * steps_per_generation,
                   "mean": float(finite.mean()) if finite.size else math.nan,
                   "median": float(np.median(finite)) if finite.size else math.nan,
                   "best": float(finite.max()) if finite.size else math.nan,
                   "worst": float(finite.min()) if finite.size else math.nan,
                   "failed": int(P - finite.size)}
            curve.append(row)
            if out_dir is not None and rec is not None:
                save_generation(out_dir, plan, es_state, generation, curve)
            bar.message(f"generation {generation + 1}/{spec.generations}: fitness mean {row['mean']:.1f}, median "
                        f"{row['median']:.1f}, best {row['best']:.1f}")
            if on_generation:
                on_generation(row)
    summary = {
        "name": spec.name, "algo": spec.algo, "env": plan.config.env, "objective": plan.config.objective,
        "population": P, "shared_seeds": spec.shared_seeds,
        "seeds_per_member": spec.seeds_per_member, "fitness": spec.fitness, "generations": spec.generations,
        "sigma": spec.sigma, "lr": spec.lr,
        "init_std": spec.init_std, "env_steps_per_member": program.num_updates * program.steps_per_update,
        "best_fitness": float(-es_state.best_fitness), "final_generation": curve[-1] if curve else None,
        "compile_s": round(timings["compile_s"], 3), "run_s": round(timings["run_s"], 3),
        "steps_per_second": round((spec.generations - first) * steps_per_generation / max(timings["run_s"], 1e-9)),
    }
    if first:
        summary["resumed_from_generation"] = first
    if rec:
        plot_run(out_dir, plan, es_state, curve)
        summary["wall_s"] = round(time.perf_counter() - wall_start, 3)
        rec.write_json("summary.json", summary)
        rec.finish("finished")
    return MetaResult(out_dir, summary, curve)


def format_result(result: MetaResult) -> str:
    s = result.summary
    last = s["final_generation"] or {}
    return (f"meta {s['name']}: {s['generations']} generations x {s['population']} members x "
            f"{s['seeds_per_member']} {s['algo']} runs "
            f"({s['objective']}) of {s['env_steps_per_member']:,} steps on {s['env']}; compile {s['compile_s']:.1f} s, "
            f"run {s['run_s']:.1f} s, {s['steps_per_second']:,} steps/s\n"
            f"  last generation fitness: mean {last.get('mean', math.nan):.1f}, median "
            f"{last.get('median', math.nan):.1f}, best {last.get('best', math.nan):.1f}; best member ever "
            f"{s['best_fitness']:.1f}")
