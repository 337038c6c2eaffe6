"""The Python API behind the `jaxrl` command: resolve a config, train with a
run record, evaluate a run directory."""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from jaxrl import algos, checkpoint, plots, records
from jaxrl.algos import resolve_config
from jaxrl.config import check_keys, hparams, load_yaml, to_dict
from jaxrl.progress import Progress
from jaxrl.errors import JaxrlError


def config_algo(config) -> str:
    for name in algos.ALGOS:
        if type(config) is algos.get(name).Config:
            return name
    raise JaxrlError(f"{type(config).__name__} is not a registered algorithm config")


@dataclass
class TrainResult:
    run_dir: Path | None
    summary: dict
    state: Any  # final runner state, batched over seeds
    metrics: dict[str, np.ndarray]  # name -> [num_seeds, num_updates]


def metric_rows(report, num_seeds: int, first_seed: int, steps_per_update: int, steps_per_s: float) -> list[dict]:
    """metrics.csv rows of one chunk: one per update per seed."""
    m = report.metrics
    rows = []
    for s in range(num_seeds):
        for i in range(report.num_updates):
            count = np.nan_to_num(m["episodes"][s, i])  # NaN after a run diverged
            row = {
                "seed": first_seed + s,
                "update": report.first_update + i + 1,
                "env_steps": (report.first_update + i + 1) * steps_per_update,
                "episodes": int(count),
                "episode_return": float(m["episode_return_sum"][s, i] / count) if count else "",
                "episode_length": float(m["episode_length_sum"][s, i] / count) if count else "",
            }
            row.update({k: float(v[s, i]) for k, v in m.items()
                        if k not in ("episodes", "episode_return_sum", "episode_length_sum")})
            row["steps_per_second"] = round(steps_per_s)
            rows.append(row)
    return rows


def train(config, out: str | None = None, progress: bool = True, record: bool = True,
          eval_episodes: int = 10, checkpoint_every: int = 0, keep_checkpoints: int = 3,
          devices: int | None = None) -> TrainResult:
    """Train `config` (all seeds in one program); with `record`, write a run directory with a
    checkpoint of the whole loop state every `checkpoint_every` updates (0: about 10 per run).
    `devices`: how many devices share the work (None: all; see jaxrl.devices)."""
    from jaxrl import devices as devices_

    if checkpoint_every < 0:
        raise JaxrlError(f"checkpoint_every={checkpoint_every}: must be >= 0")
    if keep_checkpoints < 1:
        raise JaxrlError(f"keep_checkpoints={keep_checkpoints}: must be >= 1")
    wall_start = time.perf_counter()
    algo = config_algo(config)
    program = algos.get(algo).make_program(config)  # builds the env, checks it fits the algorithm
    layout = devices_.plan(devices, config.num_seeds, program.env_shards)
    from jaxrl import loop

    loop.check_memory(program, run_keys(config)[1], hparams(config), layout.describe()["devices"])
    run_dir = records.new_run_dir(out, algo, config.env) if record else None
    rec = records.RunRecord(run_dir, to_dict(config), algo, checkpoint_every=checkpoint_every,
                            keep_checkpoints=keep_checkpoints, **layout.describe()) \
        if record and devices_.is_main() else None
    return _execute(config, program, layout, run_dir, rec, progress, eval_episodes, checkpoint_every,
                    keep_checkpoints, None, wall_start)


def run_keys(config):
    """Seeds of a run and their keys: seed i of a run uses PRNGKey(seed + i)."""
    import jax
    import jax.numpy as jnp

    seeds = np.arange(config.seed, config.seed + config.num_seeds)
    return seeds, jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))


def _execute(config, program, layout, run_dir, rec, progress: bool, eval_episodes: int, checkpoint_every: int,
             keep_checkpoints: int, start, wall_start: float) -> TrainResult:
    """The host side of a run (fresh or resumed): progress, metrics, checkpoints, preemption, summary.

    Every process runs this; only the one holding `rec` (process 0) writes the record, all of
    them take part in checkpoint writes."""
    from jaxrl import loop
    from jaxrl.errors import Preempted
    from jaxrl.preemption import PreemptionGuard

    algo = config_algo(config)
    module = algos.get(algo)
    seeds, keys = run_keys(config)
    first = start.done if start else 0
    bar = Progress(program.num_updates * program.steps_per_update, progress)
    every = checkpoint_every or max(1, program.num_updates // 10)
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", keep_checkpoints) if run_dir else None
    info = {"jaxrl_version": version("jaxrl"), "algo": algo, "config": to_dict(config)}
    last = {"t": 0.0, "steps": first * program.steps_per_update, "saved": first}

    def stop_now(status: str, message: str) -> str:
        """The process ends at once (a signal while compiling, or a second signal): the record says why."""
        message += (f"; resume from its last complete checkpoint with: jaxrl resume {run_dir}"
                    if run_dir and last["saved"] else "; no checkpoint was written, nothing to resume")
        if rec:
            rec.finish(status, message)
        return message

    guard = PreemptionGuard(stop_now)

    def on_chunk(report):
        dt = report.run_seconds - last["t"]
        sps = (report.env_steps - last["steps"]) * config.num_seeds / max(dt, 1e-9)
        last.update(t=report.run_seconds, steps=report.env_steps)
        if rec:
            rec.add_metrics(metric_rows(report, config.num_seeds, config.seed, program.steps_per_update, sps))
        count = np.nan_to_num(report.metrics["episodes"]).sum()
        ret = np.nan_to_num(report.metrics["episode_return_sum"]).sum() / count if count else float("nan")
        bar.chunk(report.env_steps, sps, ret)
        due = report.done // every > last["saved"] // every or report.done == program.num_updates
        if ckpt and (due or guard.requested):
            run = {"state": report.state, "diverged_at": report.diverged_at,
                   "metrics": {k: np.concatenate([h[k] for h in report.history], axis=1) for k in report.metrics}}
            ckpt.save(report.done, layout.to_host(run), layout.to_host(module.policy_state(report.state)), info)
            last["saved"] = report.done
        if guard.requested and report.done < program.num_updates:  # the `finally` below waits for the write
            name = signal.Signals(guard.signum).name
            where = f"checkpoint written; resume with: jaxrl resume {run_dir}" if run_dir else "no run directory"
            raise Preempted(f"stopped by {name} after update {report.done} of {program.num_updates}; {where}",
                            guard.signum)

    with rec.lock if rec else nullcontext(), records.failures(rec), bar, guard:  # the lock: see records.RunLock
        try:
            if start is None:
                bar.compiling(f"{algo} on {config.env}, {config.num_seeds} seed(s)")
            else:
                bar.compiling(f"{algo} on {config.env}, resuming after update {start.done}")
            compiled = guard.interruptible(lambda: loop.compile_program(program, keys, hparams(config), layout))
            bar.compiled(compiled.seconds)
            state, metrics, diverged_at, timings = loop.run(program, keys, hparams(config), on_chunk=on_chunk,
                                                            compiled=compiled, start=start)
        finally:
            if ckpt:
                ckpt.close()  # waits for the last write
        bar.close()
        final = records.final_returns(metrics)
        finished = final[~np.isnan(final)]  # seeds with an episode in the final window
        summary = {
            "algo": algo,
            "env": config.env,
            "seeds": seeds.tolist(),
            "env_steps_per_seed": program.num_updates * program.steps_per_update,
            "final_return_mean": _num(finished.mean()) if finished.size else None,
            "final_return_std": _num(finished.std()) if finished.size else None,
            "final_return_per_seed": [_num(v) for v in final],
            "best_return": _num(np.fmax.reduce(records.smoothed_returns(metrics).mean(0))),  # NaN: no episode
            "diverged": {int(seed): int(at) for seed, at in zip(seeds, diverged_at) if at >= 0},
            **layout.describe(),
            "compile_s": round(timings["compile_s"], 3),
            "run_s": round(timings["run_s"], 3),
            "steps_per_second": round((program.num_updates - first) * program.steps_per_update * config.num_seeds
                                      / timings["run_s"]),
        }
        if start is not None:
            summary["resumed_from_update"] = start.done
        policy = layout.to_host(module.policy_state(state))
        if eval_episodes:
            summary["eval"] = evaluate_state(config, policy, eval_episodes, seed=config.seed)
        if rec:
            plots.plot_curves(rec.path, metrics, program.steps_per_update, f"{algo} on {config.env}")
            if hasattr(module, "report"):  # an algorithm's own after-training record (self-play ratings)
                summary.update(module.report(config, policy, rec.path, program.steps_per_update))
            summary["wall_s"] = round(time.perf_counter() - wall_start, 3)
            rec.write_summary(summary)
            rec.finish("finished")
        return TrainResult(run_dir, summary, state, metrics)


def resume(run_dir: str | Path, from_checkpoint: int | None = None, overrides: dict[str, Any] | None = None,
           progress: bool = True, eval_episodes: int = 10, devices: int | None = None) -> TrainResult:
    """`jaxrl resume`: continue a stopped or killed run from its latest (or a chosen) checkpoint.

    On the same machine and device count the result is bitwise the run that was never stopped.
    `overrides` may change dynamic hyperparameters only (they do not change shapes).
    A sweep directory resumes as a sweep (`sweep.resume_sweep`).
    """
    import jax

    from jaxrl import devices as devices_
    from jaxrl import loop, sweep
    from jaxrl.config import fields_of
    from jaxrl.envs.registry import imported_modules

    if sweep.is_sweep_dir(run_dir):
        if from_checkpoint is not None or overrides:
            raise JaxrlError("--from-checkpoint and --set do not apply to a sweep (its finished groups are kept)")
        import_recorded_modules(run_dir)
        return sweep.resume_sweep(run_dir, progress=progress, devices=devices)

    wall_start = time.perf_counter()
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    meta_path = run_dir / "metadata.json"
    if not meta_path.is_file():
        raise JaxrlError(f"{str(run_dir)!r} is not a run directory: it has no metadata.json")
    # Held until the run ends, from before reading checkpoints that another process could be replacing.
    lock = records.RunLock(run_dir) if devices_.is_main() else None
    meta = records.read_metadata(meta_path)
    if meta.get("status") == "finished":
        raise JaxrlError(f"run {str(run_dir)!r} has finished; nothing to resume")
    if lock and meta.get("status") == "running":  # its process would hold the lock: it is gone
        print(f"note: run {str(run_dir)!r} was still marked running, but its process (pid {meta.get('pid', '?')} on "
              f"{meta.get('host', '?')}) is gone; resuming it", file=sys.stderr)
    ckpt_dir = run_dir / "checkpoints"
    step, info = checkpoint.restore_info(ckpt_dir, from_checkpoint, flag="--from-checkpoint {}")
    if info.get("format") != checkpoint.FORMAT:
        raise JaxrlError(f"checkpoint {step} of {str(run_dir)!r} was written by jaxrl {info.get('jaxrl_version')} "
                         f"(checkpoint format {info.get('format')}); this jaxrl {version('jaxrl')} reads format "
                         f"{checkpoint.FORMAT}")
    module = algos.get(config_algo(config))
    dynamic = {f.name for f in fields_of(type(config), "dynamic")}
    written = info["config"]  # what the run used up to the checkpoint
    current = to_dict(config)
    changed = [k for k in current if k not in dynamic and written.get(k) != current[k]]
    if changed:
        raise JaxrlError("config.yaml differs from the config checkpoint {} was written with: {}; only dynamic "
                         "hyperparameters can change on resume ({})".format(
                             step, ", ".join(f"{k}: {written.get(k)!r} -> {current[k]!r}" for k in changed),
                             ", ".join(sorted(dynamic))))
    overrides = dict(overrides or {})
    check_keys(type(config), overrides, "resume overrides")
    fixed = [k for k in overrides if k not in dynamic]
    if fixed:
        raise JaxrlError(f"{', '.join(fixed)} cannot change on resume (only dynamic hyperparameters can: "
                         f"{', '.join(sorted(dynamic))})")
    config = dataclasses.replace(config, **overrides)  # validated again
    # Dynamic fields edited in config.yaml or set with --set apply from here on, and are recorded.
    changes = [{"after_update": step, "field": k, "old": written.get(k), "new": getattr(config, k),
                "source": "--set" if k in overrides else "config.yaml"}
               for k in current if k in dynamic and getattr(config, k) != written.get(k)]
    program = module.make_program(config)
    seeds, keys = run_keys(config)
    state_shape, metric_shapes = loop.state_shapes(program, keys, hparams(config))
    target = {"state": jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), state_shape),
              "diverged_at": np.zeros(len(seeds), np.int32),
              "metrics": {k: np.zeros((len(seeds), step), m.dtype) for k, m in metric_shapes.items()}}
    layout = devices_.plan(devices, len(seeds), program.env_shards)
    restored = checkpoint.restore_run(ckpt_dir, step, target, flag="--from-checkpoint {}")
    state = restored["state"]
    if changes:
        state = state.replace(hparams={**state.hparams, **{c["field"]: np.full(len(seeds), c["new"], np.float32)
                                                           for c in changes}})
    rec = None
    if devices_.is_main():
        later = [s for s in checkpoint.steps(ckpt_dir) if s > step]
        if later:  # kept, not deleted: moved aside so the resumed run can write its own
            aside = run_dir / "checkpoints-superseded"
            aside.mkdir(exist_ok=True)
            for s in later:
                shutil.move(str(ckpt_dir / str(s)), str(aside / str(s)))
        rec = records.RunRecord.reopen(run_dir, step, lock)
        rec.write_metadata(**layout.describe(), config_changes=rec.meta.get("config_changes", []) + changes,
                           imports=imported_modules())
        if changes or overrides:  # config.yaml says what the run uses
            rec.write_yaml("config.yaml", {"algo": config_algo(config), **to_dict(config)})
        if progress:
            for c in changes:
                print(f"{c['field']}: {c['old']} -> {c['new']} ({c['source']}) from update {step + 1} on",
                      file=sys.stderr)
    devices_.barrier("resume")
    start = loop.Start(state, restored["diverged_at"], step, restored["metrics"])
    return _execute(config, program, layout, run_dir, rec, progress, eval_episodes, meta.get("checkpoint_every", 0),
                    meta.get("keep_checkpoints", 3), start, wall_start)


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 4)


def evaluate_state(config, policy: dict, episodes: int, seed: int = 0) -> dict:
    """Deterministic-policy return over `episodes` episodes for every seed in `policy` (leading axis)."""
    import jax

    from jaxrl import envs
    from jaxrl.evaluate import evaluate_policy

    module = algos.get(config_algo(config))
    own = getattr(module, "evaluate", None)  # an algorithm's own evaluation (self-play: games won)
    if own is not None and (result := own(config, policy, episodes, seed)) is not None:
        return result
    env = envs.make(config.env)
    act = module.make_policy(config, env, env.default_params)
    num_seeds = jax.tree.leaves(policy)[0].shape[0]
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    run = jax.jit(jax.vmap(lambda p, k: evaluate_policy(env, env.default_params, act, p, k, episodes)))
    returns, lengths, finished = jax.device_get(run(policy, keys))
    returns = np.asarray(returns, dtype=np.float64)
    return {
        "episodes": int(episodes * num_seeds),
        "return_mean": round(float(returns.mean()), 4),
        "return_std": round(float(returns.std()), 4),
        "return_per_seed": [round(float(r), 4) for r in returns.mean(1)],
        "length_mean": round(float(np.mean(lengths)), 2),
        "all_finished": bool(np.all(finished)),
    }


def load_run_config(run_dir: str | Path):
    """The config a run directory was trained with (and the modules it imported, which register its env)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise JaxrlError(f"run directory {str(run_dir)!r} does not exist")
    if not (run_dir / "config.yaml").is_file():
        raise JaxrlError(f"{str(run_dir)!r} is not a run directory: it has no config.yaml")
    import_recorded_modules(run_dir)
    values = load_yaml(run_dir / "config.yaml")
    algo = values.get("algo")
    if not isinstance(algo, str):
        raise JaxrlError(f"{str(run_dir / 'config.yaml')!r} names no algo")
    return resolve_config(algo, str(run_dir / "config.yaml"))


def import_recorded_modules(record_dir: Path) -> None:
    """Import the modules a run or sweep was started with (`--import`, listed in its metadata.json)."""
    from jaxrl.envs.registry import import_modules

    meta_path = Path(record_dir) / "metadata.json"
    if meta_path.is_file():
        import_modules(records.read_metadata(meta_path).get("imports", []), f"recorded in {str(meta_path)!r}")


def default_eval_episodes(config) -> int:
    """The evaluation when none is asked for: 10 episodes per seed, or for a self-play run 100 games
    per seat per seed against each opponent (win rates to within about ten points)."""
    return 100 if getattr(config, "selfplay", "off") != "off" else 10


def evaluate(run_dir: str | Path, episodes: int | None = None, seed: int = 0, step: int | None = None,
             opponent: str | None = None, show: bool = False, opening: int = 0) -> dict:
    """`jaxrl eval`: restore the run's policy checkpoint and evaluate it deterministically, over
    `episodes` episodes per seed (None: `default_eval_episodes`).

    Self-play runs play `episodes` games in each seat per seed against `opponent` (default: the
    game's scripted players): a scripted player's name, `path/to/file.py:function`, or another run
    `RUN_DIR[@STEP]`; the first `opening` moves of every game are random (`arena.play`); `show` adds
    one game per seat, move by move."""
    if episodes is not None and episodes < 1:
        raise JaxrlError(f"episodes={episodes}: must be >= 1")
    if opening < 0:
        raise JaxrlError(f"--random-opening {opening}: must be >= 0")
    config = load_run_config(run_dir)
    selfplay = getattr(config, "selfplay", "off") != "off"
    if (opponent or show or opening) and not selfplay:
        raise JaxrlError(f"--opponent, --show and --random-opening apply to self-play runs; {str(run_dir)!r} was "
                         f"not trained by self-play")
    episodes = default_eval_episodes(config) if episodes is None else episodes
    module = algos.get(config_algo(config))
    opponents = _opponents(opponent, config) if selfplay else None
    if show and opponents and None in opponents.values():
        raise JaxrlError(f"--show: {opponent} is built into another env and cannot be shown; pick another opponent")
    step, policy = checkpoint.restore_policy(Path(run_dir) / "checkpoints", step, flag="--checkpoint {}")
    if selfplay:
        result = module.evaluate(config, policy, episodes, seed, opponents, opening)
    else:
        result = evaluate_state(config, policy, episodes, seed)
    result = {"run_dir": str(run_dir), "run_status": records.run_status(run_dir), "checkpoint": step,
              "env": config.env, **result}
    if show:
        import jax

        from jaxrl import envs
        from jaxrl.league import arena

        env = envs.make(config.env)
        act = module.make_actor(config, env, env.default_params)
        player = arena.params_player(act, jax.tree.map(lambda x: x[0, 0], policy["params"]))
        name, other = next(iter((opponents or arena.scripted_players(env)).items()))
        result["shown"] = {"opponent": name,
                           "games": [arena.show_game(env, player, other, side, seed, opening=opening)
                                     for side in (0, 1)]}
    return result


def load_policy(run_dir: str | Path, checkpoint: int | None = None, seed_index: int = 0, deterministic: bool = True):
    """A trained run's policy: `policy(obs, key=None) -> action`, compiled on first call.

    obs: one observation [*obs_shape] or a batch [B, *obs_shape] (multi-agent runs: the AgentView
    dict `jaxrl eval` plays with, agents leading). The policy of seed `seed_index` at checkpoint
    `checkpoint` (default: latest) plays its mode, as `jaxrl eval` does, or, when not
    `deterministic`, a sample drawn with `key`."""
    import jax

    from jaxrl import envs
    from jaxrl.checkpoint import restore_policy

    config = load_run_config(run_dir)
    if getattr(config, "recurrent", False):
        raise JaxrlError(f"run {str(run_dir)!r} has a recurrent policy, which carries a hidden state from step to "
                         f"step; load_policy returns memoryless policies only")
    if not 0 <= seed_index < config.num_seeds:
        raise JaxrlError(f"seed_index={seed_index}: the run has {config.num_seeds} seeds "
                         f"(0 to {config.num_seeds - 1})")
    _, trained = restore_policy(Path(run_dir) / "checkpoints", checkpoint)
    trained = jax.tree.map(lambda x: x[seed_index], trained)
    env = envs.make(config.env)
    act = jax.jit(algos.get(config_algo(config)).make_policy(config, env, env.default_params,
                                                             stochastic=not deterministic))

    def policy(obs, key=None):
        if key is None and not deterministic:
            raise JaxrlError("a policy loaded with deterministic=False needs a key: policy(obs, key)")
        return act(trained, obs, key)

    return policy


def _opponents(spec: str | None, config) -> dict:
    """name -> arena player for `jaxrl eval --opponent`, None for an opponent built into another env
    (SMAX's heuristic enemy); no spec: None (the game's scripted and built-in opponents)."""
    if spec is None:
        return None
    from jaxrl import envs
    from jaxrl.league import arena

    env = envs.make(config.env)
    scripted = arena.scripted_players(env) | dict.fromkeys(getattr(env.unwrapped, "fixed_opponents", {}))
    if spec in scripted:
        return {spec: scripted[spec]}
    if ".py:" in spec:
        return {spec: arena.external_player(spec, env)}
    other_dir, _, at = spec.partition("@")
    if not Path(other_dir).is_dir():
        raise JaxrlError(f"unknown opponent {spec!r}: give one of {', '.join(scripted)}, path/to/file.py:function, "
                         f"or a run directory RUN_DIR[@STEP]")
    if at and not at.isdigit():
        raise JaxrlError(f"opponent {spec!r}: the checkpoint after @ must be a number")
    other = load_run_config(other_dir)
    if other.env != config.env or not hasattr(other, "selfplay"):
        raise JaxrlError(f"opponent run {other_dir!r} plays {other.env} with {config_algo(other)}; "
                         f"need a multi-agent policy for {config.env}")
    import jax

    step, policy = checkpoint.restore_policy(Path(other_dir) / "checkpoints", int(at) if at else None,
                                             flag=f"--opponent {other_dir}@{{}}")
    act = algos.get(config_algo(other)).make_actor(other, env, env.default_params)
    return {f"{other_dir}@{step}": arena.params_player(act, jax.tree.map(lambda x: x[0, 0], policy["params"]))}


__all__ = ["resolve_config", "train", "resume", "evaluate", "load_policy", "TrainResult"]
