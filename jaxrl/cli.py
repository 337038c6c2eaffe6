"""The `jaxrl` command: train, selfplay, resume, eval, sweep, pbt, bench, meta, report, envs, algos."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys

from jaxrl.errors import JaxrlError, Preempted

DEFAULT_ALGO = "ppo"
EVAL_EPISODES_HELP = ("deterministic evaluation after training: episodes per seed (default 10); self-play runs: games "
                      "per seat per seed against each scripted player (default 100); 0 = none")


# The batch drivers, many runs from one YAML source into one directory: name -> (source argument, its help,
# default directory, one-line help, description).
BATCH_COMMANDS = {
    "sweep": ("spec", "sweep spec (YAML)", "sweeps/sweep-<name>-<time>",
              "train many configs x seeds in one compiled program per group",
              "Run a hyperparameter sweep from a YAML spec (see README, Sweeps): points are grouped by static fields, "
              "each group compiled once and its runs vmapped. Writes a sweep directory with runs.csv, ranking.csv, "
              "best.yaml and plots."),
    "pbt": ("spec", "PBT spec (YAML)", "sweeps/pbt-<name>-<time>", "population-based training in one compiled program",
            "Population-based training (Jaderberg et al. 2017) from a YAML spec with a `pbt:` section: every `ready` "
            "updates the bottom fraction copies the state of the top fraction and perturbs its hyperparameters, all "
            "on the device."),
    "bench": ("suite", "a shipped suite (classic, minatar, brax-small, mpe) or a suite YAML file",
              "benches/bench-<name>-<time>", "run a benchmark suite: algorithms x envs x seeds, one program per group",
              "Run a benchmark suite (see README, Benchmark suites): each (algorithm config, env) is one compiled "
              "program with its seeds vmapped and one run directory; scores.csv holds every run's final and "
              "normalised score, summary.json the aggregates (IQM, mean, median, optimality gap, 95% CIs)."),
    "meta": ("spec", "meta spec (YAML)", "sweeps/meta-<name>-<time>",
             "meta-learn a policy objective by evolution strategies over whole runs",
             "Evolve a learned PPO objective (LPO / TA-LPO drift) with OpenAI-ES from a YAML spec (see README, Learned "
             "objectives): each generation trains the whole population of inner runs in one compiled program. "
             "Writes the meta curve, the best and mean learned drift (usable as --set objective=PATH) and a drift "
             "plot; `jaxrl resume DIR` continues from the last finished generation."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxrl", description="Reinforcement learning where the whole training run is one compiled JAX program.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = sub.add_parser("train", help="train an agent and write a run directory",
                           description="Train an agent (all seeds in one compiled program) and write a run "
                                       "directory. With no arguments: PPO on gymnax:CartPole-v1.")
    _add_train_args(train, algo_help=f"algorithm (default {DEFAULT_ALGO}; see `jaxrl algos`)",
                    env_help="environment id (default gymnax:CartPole-v1; see `jaxrl envs`)",
                    eval_help=EVAL_EPISODES_HELP)
    selfplay = sub.add_parser("selfplay", help="train a two-player game agent by self-play (ippo/mappo)",
                              description="Self-play on a two-sided zero-sum game (jaxrl:tictactoe, jaxrl:connect4, "
                                          "jaxrl:sumo): the same as `jaxrl train --algo ippo --set selfplay=MODE`. "
                                          "After training, the pool snapshots are rated by a round robin (Elo; "
                                          "league.json, ratings.png, winrate.png) and the policy plays the "
                                          "game's scripted players in each seat.")
    _add_train_args(selfplay, algo_help="ippo or mappo (default ippo)",
                    env_help="the game: jaxrl:tictactoe, jaxrl:connect4, jaxrl:sumo or a symmetric SMAX map such as "
                             "jaxmarl:SMAX/3m (required unless --config names it)",
                    eval_help="deterministic evaluation after training: games per seat per seed against each of "
                              "the game's scripted players (default 100; 0 = none)")
    selfplay.add_argument("--mode", choices=("latest", "pool", "pfsp", "population"),
                          help="opponents: latest (mirror), pool (uniform past snapshots), pfsp (prioritised by "
                               "win rate), population (N policies trained together); default: the game's preset "
                               "(latest on tic-tac-toe), else pfsp")
    selfplay.add_argument("--population", type=int, help="population size for --mode population (default 8)")

    res = sub.add_parser("resume", help="continue a stopped, preempted or killed run or sweep",
                         description="Continue a run from its latest checkpoint (or --from-checkpoint N), in the "
                                     "same directory. On the same machine and device count the result is bitwise "
                                     "that of the run never stopped. SIGTERM/SIGINT stop a run after the current "
                                     "chunk with a checkpoint; a second signal aborts at once. A sweep directory "
                                     "continues with the groups not finished yet, a bench directory with its "
                                     "groups not finished yet.")
    res.add_argument("run_dir", help="run directory written by `jaxrl train` (or a sweep or bench directory)")
    res.add_argument("--from-checkpoint", type=int, metavar="N", help="resume from checkpoint N (default: latest)")
    res.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                     help="change a dynamic hyperparameter from here on (e.g. --set lr=1e-4)")
    res.add_argument("--eval-episodes", type=int, help=EVAL_EPISODES_HELP)
    _add_log_arg(res, " (the loggers the run was started with go on)")
    _add_progress_arg(res)
    _add_import_arg(res)
    _add_device_args(res)

    ev = sub.add_parser("eval", help="evaluate a trained run's deterministic policy",
                        description="Restore a run's checkpoint and report the deterministic policy's return.")
    ev.add_argument("run_dir", nargs="+", help="run directory written by `jaxrl train` (several with --family: "
                                               "their ranking over the family)")
    ev.add_argument("--episodes", type=int, help="episodes per seed (default 10; with --family 8 per context); "
                                                 "self-play runs: games per seat per seed against each opponent "
                                                 "(default 100)")
    ev.add_argument("--family", metavar="SPEC",
                    help="evaluate over a family of the env's parameters, e.g. 'length=uniform(0.25,2.5),"
                         "masspole=loguniform(0.05,0.5)' (also normal(mean,std), choice(a,b,...), and any of "
                         "them *default: relative to the default value); writes family_eval.json, "
                         "family_contexts.csv and family_eval.png to each run")
    ev.add_argument("--contexts", type=int, default=256, help="--family: contexts drawn (default 256)")
    ev.add_argument("--kmeans", type=int, default=0, metavar="K",
                    help="--family: also estimate the family mean from K k-means centroids of the contexts, "
                         "weighted by cluster mass (default 0: off)")
    ev.add_argument("--seed", type=int, default=0, help="evaluation seed")
    ev.add_argument("--checkpoint", type=int, help="checkpoint step (default: latest)")
    ev.add_argument("--opponent", help="self-play runs: random, heuristic, minimax (tic-tac-toe), "
                                       "path/to/file.py:function (a Python function (obs, legal mask) -> action; "
                                       "the file is executed as Python code with your rights: run only files you "
                                       "trust), or another run RUN_DIR[@STEP] (default: every scripted player, and "
                                       "built-in ones such as SMAX's heuristic enemy)")
    ev.add_argument("--random-opening", type=int, default=0, metavar="K",
                    help="self-play runs: the first K moves of every game (both sides) are random legal moves, so "
                         "that deterministic players meet varied positions (default 0: every move is the "
                         "players'; the table counts the distinct games)")
    ev.add_argument("--show", action="store_true", help="self-play runs: print one game per seat move by move")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_import_arg(ev)

    batch = {name: _add_batch_command(sub, name, *texts) for name, texts in BATCH_COMMANDS.items()}
    batch["sweep"].add_argument("--allow-many-compiles", action="store_true",
                                help="run even when the static fields need more than max_compiles compilations")
    batch["sweep"].add_argument("--top", type=int, default=10, help="points shown at the top of the printed ranking")
    _add_checkpoint_arg(batch["pbt"])
    report = sub.add_parser("report", help="compare runs, sweeps and benchmarks in a Markdown report with plots",
                            description="Write report.md (per-env scores, aggregate IQM/mean/median/optimality "
                                        "gap, probability of improvement, all with stratified bootstrap 95% CIs; "
                                        "provenance of every input) and PNG plots from run, sweep (its best "
                                        "point) and bench directories. Runs are labelled algo@commit, so two "
                                        "algorithms or two commits of jaxrl compare (see README, Reports).")
    report.add_argument("dirs", nargs="+", metavar="DIR", help="run, sweep or bench directory")
    report.add_argument("--out", help="report directory to create (default reports/<time>)")
    report.add_argument("--labels", help="comma-separated label per DIR (default: algo@commit of each)")
    report.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    report.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")

    envs_cmd = sub.add_parser("envs", help="list environment ids",
                              description="List the environment ids that work here, one a line on stdout; the "
                                          "ids their package registers that fail here follow on stderr, each "
                                          "with the reason.")
    envs_cmd.add_argument("filter", nargs="?", default="", help="show only ids containing this text")

    algos_cmd = sub.add_parser("algos", help="list algorithms and their config fields",
                               description="List algorithms; with a name, its config fields.")
    algos_cmd.add_argument("name", nargs="?", help="algorithm to describe")
    return parser


def _add_train_args(parser: argparse.ArgumentParser, algo_help: str, env_help: str, eval_help: str) -> None:
    """The options `train` and `selfplay` share; the help texts name each command's defaults."""
    parser.add_argument("--algo", default=None, help=algo_help)
    parser.add_argument("--env", help=env_help)
    parser.add_argument("--config", help="YAML config file (e.g. a run's config.yaml)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config field; repeatable (e.g. --set lr=1e-3)")
    parser.add_argument("--seeds", type=int, help="number of seeds trained together in one program")
    parser.add_argument("--seed", type=int, help="seed of the first run")
    parser.add_argument("--total-timesteps", type=float, help="env steps per seed (e.g. 1e6)")
    parser.add_argument("--out", help="run directory to create (default runs/<algo>-<env>-<time>)")
    parser.add_argument("--eval-episodes", type=int, help=eval_help)
    _add_checkpoint_arg(parser)
    parser.add_argument("--keep-checkpoints", type=int, default=3, metavar="K", help="latest checkpoints kept")
    _add_log_arg(parser)
    _add_run_args(parser)


def _add_log_arg(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument("--log", metavar="tensorboard,wandb",
                        help="also log the metrics to TensorBoard event files (RUN/tensorboard) and/or Weights & "
                             "Biases (RUN/wandb; offline unless WANDB_MODE=online)" + more)


def _add_checkpoint_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint-every", default="5m", metavar="EVERY",
                        help="how often the whole state is checkpointed: N updates, or wall time such as 30s, "
                             "5m, 1h (default 5m; always at the end and when stopped)")


def _add_batch_command(sub, name: str, source: str, source_help: str, default_out: str, summary: str,
                       description: str) -> argparse.ArgumentParser:
    """The subcommand of a batch driver (`BATCH_COMMANDS`): many runs from one YAML `source` into one directory."""
    parser = sub.add_parser(name, help=summary, description=description)
    parser.add_argument(source, help=source_help)
    parser.add_argument("--out", help=f"directory to create (default {default_out})")
    _add_run_args(parser)
    return parser


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    """What every command that compiles and runs programs takes: progress, cache, imports, devices."""
    _add_progress_arg(parser)
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not use JAX's persistent compilation cache (also: JAXRL_COMPILE_CACHE=0)")
    _add_import_arg(parser)
    _add_device_args(parser)


def _add_import_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE (a dotted name, or path/to/file.py) first, so that the envs it "
                             "registers with jaxrl.envs.register can be used; repeatable. Recorded in "
                             "metadata.json: eval and resume of the run import it again")


def _import_modules(args) -> None:
    """The modules named by --import register their envs."""
    from jaxrl.envs.registry import import_modules

    import_modules(args.imports, "--import")


def _add_progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress bar: a plain line (steps, steps/s, return) at every tenth of the "
                             "run instead, as whenever stderr is not a terminal")


def _progress(args) -> bool | str:
    """api's `progress`: a live bar (plain lines where stderr is not a terminal), or plain lines."""
    return "lines" if args.no_progress else True


def _add_device_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("devices and hosts", "runs split over devices (seeds/sweep points when "
                                      "they divide, else each run's envs); several hosts join with "
                                      "jax.distributed (see README, Multi-device and multi-host)")
    group.add_argument("--devices", type=int, metavar="N", help="devices to use (default: all)")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0 for a multi-process run ('auto': detect SLURM/MPI; "
                            "env JAXRL_COORDINATOR)")
    group.add_argument("--num-processes", type=int, metavar="P", help="processes in the run (env JAXRL_NUM_PROCESSES)")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0..P-1 (env JAXRL_PROCESS_ID)")


def cmd_selfplay(args) -> int:
    from jaxrl import api
    from jaxrl.config import ConfigError, parse_overrides

    args.algo = args.algo or _config_file_algo(args.config) or "ippo"
    if args.algo not in ("ippo", "mappo"):
        raise ConfigError(f"self-play trains ippo or mappo, not {args.algo}")
    if args.mode is None:  # the preset's (or config file's) mode, else pfsp
        overrides = parse_overrides(args.sets) | ({"env": args.env} if args.env else {})
        preset = api.resolve_config(args.algo, args.config, overrides).selfplay
        args.mode = "population" if args.population is not None else preset if preset != "off" else "pfsp"
    if args.population is not None and args.mode != "population":
        raise ConfigError(f"--population applies to --mode population, not --mode {args.mode}")
    args.sets = args.sets + [f"selfplay={args.mode}"]
    if args.mode == "population":
        args.sets.append(f"population_size={args.population or 8}")
    return cmd_train(args)


def cmd_train(args) -> int:
    from jaxrl import api, evaluate
    from jaxrl.config import ConfigError, parse_overrides

    overrides = parse_overrides(args.sets)
    shortcuts = {"env": args.env, "num_seeds": args.seeds, "seed": args.seed,
                 "total_timesteps": args.total_timesteps}
    for key, value in shortcuts.items():
        if value is None:
            continue
        if key in overrides:
            raise ConfigError(f"{key} is given both as a flag and with --set")
        overrides[key] = value
    if args.eval_episodes is not None and args.eval_episodes < 0:
        raise ConfigError(f"--eval-episodes={args.eval_episodes}: must be >= 0")
    algo = args.algo or _config_file_algo(args.config) or DEFAULT_ALGO
    config = api.resolve_config(algo, args.config, overrides)
    eval_episodes = evaluate.default_eval_episodes(config) if args.eval_episodes is None else args.eval_episodes
    _prepare_runtime(use_cache=not args.no_compile_cache)
    result = api.train(config, out=args.out, progress=_progress(args), eval_episodes=eval_episodes,
                       checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                       devices=args.devices, log=args.log)
    print_summary(result)
    return 0


def cmd_resume(args) -> int:
    from jaxrl import api, bench, evaluate, meta, pbt, session
    from jaxrl.config import ConfigError, parse_overrides
    from jaxrl.sweep import record as sweep_record
    from jaxrl.sweep import run as sweep_run

    if args.eval_episodes is not None and args.eval_episodes < 0:
        raise ConfigError(f"--eval-episodes={args.eval_episodes}: must be >= 0")
    eval_episodes = args.eval_episodes
    if eval_episodes is None and not (sweep_record.is_sweep_dir(args.run_dir) or pbt.is_pbt_dir(args.run_dir)
                                      or meta.is_meta_dir(args.run_dir) or bench.is_bench_dir(args.run_dir)):
        eval_episodes = evaluate.default_eval_episodes(session.load_run_config(args.run_dir))
    overrides = parse_overrides(args.sets)
    _prepare_runtime()
    result = api.resume(args.run_dir, args.from_checkpoint, overrides, progress=_progress(args),
                        eval_episodes=eval_episodes, devices=args.devices, log=args.log)
    if isinstance(result, sweep_run.SweepResult):  # a sweep directory was resumed
        print_sweep_summary(result)
    elif isinstance(result, pbt.PBTResult):
        print(pbt.format_result(result))
    elif isinstance(result, meta.MetaResult):
        print(meta.format_result(result))
    elif isinstance(result, bench.BenchResult):
        print_bench_summary(result)
    else:
        print_summary(result)
    return 0


def print_summary(result) -> None:
    from jaxrl.devices import is_main

    if not is_main():
        return
    s = result.summary
    resumed = f" (resumed after update {s['resumed_from_update']})" if "resumed_from_update" in s else ""
    print(f"{s['algo']} on {s['env']}: {s['env_steps_per_seed']:,} env steps x {len(s['seeds'])} seed(s){resumed}")
    if s["final_return_mean"] is None:
        print("  final return: none (no training episode finished near the end of training)")
    else:
        print(f"  final return {s['final_return_mean']} ± {s['final_return_std']} (training episodes)")
    if "eval" in s and "vs" in s["eval"]:
        print(f"  games against scripted players ({s['eval']['games_per_side']} per seat, deterministic policy):")
        print_games(s["eval"]["vs"])
    elif "eval" in s:
        e = s["eval"]
        print(f"  eval return  {e['return_mean']} ± {e['return_std']} ({e['episodes']} deterministic episodes)")
    if "league" in s:
        lg = s["league"]
        scripted = ", ".join(f"{k} {v:+.0f}" for k, v in lg["elo_scripted"].items())
        direct = ", ".join(f"{v:.2f} vs {k}" for k, v in lg["last_snapshot_score"].items())
        print(f"  Elo (random = 0): first snapshot {lg['elo_first_snapshot']:+.0f}, last {lg['elo_last_snapshot']:+.0f}; "
              f"{scripted}; last snapshot's score {direct} (league.json, ratings.png, winrate.png)")
    for seed, update in s["diverged"].items():
        print(f"  seed {seed} diverged (NaN/inf) at update {update}; its state froze there")
    print(f"  compile {s['compile_s']:.1f} s, run {s['run_s']:.1f} s, {s['steps_per_second']:,} steps/s, "
          f"wall {s['wall_s']:.1f} s")
    print(f"run directory: {result.run_dir}")


def print_games(vs: dict) -> None:
    """Win/draw/loss per opponent and seat, and how many of the games differ in their moves."""
    print(f"  {'opponent':<24} {'seat':>4} {'win':>6} {'draw':>6} {'loss':>6} {'illegal':>8} {'distinct':>8}")
    repeated = []
    for name, sides in vs.items():
        for side, r in sides.items():
            illegal = f"{r['illegal_moves']}/{r['opponent_illegal_moves']}"
            distinct = r.get("distinct_games", "-")  # not counted against an enemy built into the env (SMAX)
            print(f"  {name[-24:]:<24} {side[-1]:>4} {r['win_rate']:>6.1%} {r['draw_rate']:>6.1%} "
                  f"{r['loss_rate']:>6.1%} {illegal:>8} {distinct:>8}")
            if distinct == 1 and r["games"] > 1:
                repeated.append(f"{name} (seat {side[-1]})")
    if repeated:
        print(f"  note: all games against {', '.join(repeated)} were one and the same game (both players "
              f"deterministic); `jaxrl eval --random-opening K` makes the first K moves of each game random")


def _config_file_algo(path: str | None) -> str | None:
    if not path:
        return None
    from jaxrl.config import load_yaml

    algo = load_yaml(path).get("algo")
    return algo if isinstance(algo, str) else None


def _prepare_runtime(use_cache: bool = True) -> None:
    """Before compiling: the persistent compilation cache (unless turned off)."""
    from jaxrl.cache import enable_compilation_cache, enabled_by_env

    if use_cache and enabled_by_env():
        enable_compilation_cache()


def cmd_eval(args) -> int:
    from jaxrl import api

    _prepare_runtime()
    if args.family is not None:
        return _eval_family(args)
    if len(args.run_dir) > 1:
        raise JaxrlError(f"{len(args.run_dir)} run directories: several runs are compared over a family only "
                         f"(--family SPEC)")
    r = api.evaluate(args.run_dir[0], args.episodes, args.seed, args.checkpoint, args.opponent, args.show,
                     args.random_opening)
    if args.json:
        print(json.dumps(r, indent=2))
    elif "vs" in r:  # a self-play run: games against opponents
        for game in r.get("shown", {}).get("games", []):
            print(game + "\n")
        opening = r["random_opening_moves"]
        print(f"{r['env']} (checkpoint {r['checkpoint']}): {r['games_per_side']} games per seat, deterministic policy"
              + (f", the first {opening} moves of each game random" if opening else ""))
        print_games(r["vs"])
    else:
        print(f"{r['env']} (checkpoint {r['checkpoint']}): return {r['return_mean']:.2f} ± {r['return_std']:.2f} "
              f"over {r['episodes']} episodes, mean length {r['length_mean']:.1f}")
        if len(r["return_per_seed"]) > 1:
            print("  per seed: " + ", ".join(f"{v:.2f}" for v in r["return_per_seed"]))
    if not args.json and r["run_status"] != "finished":
        print(f"  run status: {r['run_status']}; the run has not finished")
    return 0


def _eval_family(args) -> int:
    from jaxrl import api
    from jaxrl.family_eval import DEFAULT_EPISODES

    if args.opponent or args.show or args.random_opening:
        raise JaxrlError("--opponent, --show and --random-opening apply to self-play runs, not to --family")
    episodes = DEFAULT_EPISODES if args.episodes is None else args.episodes
    r = api.evaluate_family(args.run_dir, args.family, args.contexts, episodes, args.seed, args.kmeans,
                            args.checkpoint)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for s in r["runs"]:
        f, p = s["family_scores"], s["point"]
        print(f"{s['run_dir']} ({s['env']}, checkpoint {s['checkpoint']}): {s['contexts']} contexts x "
              f"{s['episodes_per_context']} episodes of {s['family']} (compile {s['seconds']['compile']} s, "
              f"run {s['seconds']['run']} s)")
        print(f"  family mean {f['mean']:.2f}  p10 {f['p10']:.2f}  p50 {f['p50']:.2f}  p90 {f['p90']:.2f}  "
              f"worst decile {f['worst_decile_mean']:.2f}  |  point MDP {p['return_mean']:.2f}")
        if "kmeans" in s:
            k = s["kmeans"]
            print(f"  k-means estimate ({k['k']} centroids) {k['estimate']:.2f}  (full {k['full_mean']:.2f})")
    if "ranking" in r:
        g = r["ranking"]
        tau = "undefined (all tied)" if g["kendall_tau"] is None else f"{g['kendall_tau']:.3f}"
        print(f"ranking: Kendall tau (point MDP vs family mean) {tau}; P(a pair the point MDP orders flips over "
              f"the family) {g['flip_probability']:.3f} ({g['bootstrap_reps']} bootstrap resamples of the contexts"
              + (f"; {g['pairs_tied_on_point_mdp']} pairs tied on the point MDP" if g["pairs_tied_on_point_mdp"]
                 else "") + ")")
    return 0


def cmd_sweep(args) -> int:
    from jaxrl.sweep import run as sweep_run
    from jaxrl.sweep import spec as sweep_spec

    if args.top < 1:
        raise JaxrlError(f"--top={args.top}: must be >= 1")
    spec = sweep_spec.load_spec(args.spec)
    _prepare_runtime(use_cache=not args.no_compile_cache)
    result = sweep_run.run_sweep(spec, out=args.out, progress=_progress(args),
                                 allow_many_compiles=args.allow_many_compiles, devices=args.devices)
    print_sweep_summary(result, args.top)
    return 0


def print_sweep_summary(result, top: int = 10) -> None:
    from jaxrl.devices import is_main
    from jaxrl.sweep.ranking import format_ranking

    if not is_main():
        return
    s = result.summary
    resumed = f", {s['resumed_groups']} group(s) kept from before" if s.get("resumed_groups") else ""
    print(f"sweep {s['name']}: {s['points']} points x {s['seeds']} seeds = {s['runs']} runs, "
          f"{s['compilations']} compilation(s) ({s['compile_s']:.1f} s), run {s['run_s']:.1f} s, "
          f"{s['steps_per_second']:,} steps/s, {s['diverged_runs']} diverged{resumed}")
    print(format_ranking(result.spec, result.ranking, top=top))
    print(f"sweep directory: {result.sweep_dir}  (best config: {result.sweep_dir / 'best.yaml'})")


def cmd_pbt(args) -> int:
    from jaxrl import pbt
    from jaxrl.devices import is_main

    spec = pbt.load_spec(args.spec)
    _prepare_runtime(use_cache=not args.no_compile_cache)
    result = pbt.run_pbt(spec, out=args.out, progress=_progress(args), devices=args.devices,
                         checkpoint_every=args.checkpoint_every)
    if is_main():
        print(pbt.format_result(result))
        print(f"pbt directory: {result.out_dir}")
    return 0


def cmd_bench(args) -> int:
    from jaxrl import bench

    suite = bench.load_suite(args.suite)
    _prepare_runtime(use_cache=not args.no_compile_cache)
    print_bench_summary(bench.run_bench(suite, out=args.out, progress=_progress(args), devices=args.devices))
    return 0


def print_bench_summary(result) -> None:
    s = result.summary
    kept = f", {s['kept_groups']} group(s) kept from before" if s["kept_groups"] else ""
    print(f"bench {s['name']}: {s['groups']} groups x {s['seeds']} seeds = {s['runs']} runs, {s['compilations']} "
          f"compilation(s) ({s['compile_s']:.1f} s), run {s['run_s']:.1f} s, {s['steps_per_second']:,} steps/s, "
          f"wall {s['wall_s']:.0f} s{kept}")
    for algo, entry in s["algos"].items():
        envs = ", ".join(f"{env.split(':')[-1]} {e['final_return_mean'] if e['final_return_mean'] != '' else '-'}" for env, e in entry["envs"].items())
        if "iqm" in entry:
            iqm = entry["iqm"]
            aggregate = f"IQM {iqm['point']:.3f} [{iqm['low']:.3f}, {iqm['high']:.3f}]"
        else:
            aggregate = entry["aggregate_error"]
        print(f"  {algo}: {aggregate}; mean final return: {envs}")
    print(f"bench directory: {result.bench_dir}  (scores: {result.bench_dir / 'scores.csv'})")


def cmd_report(args) -> int:
    from jaxrl.report import write_report

    labels = [label.strip() for label in args.labels.split(",")] if args.labels is not None else None
    if labels is not None and not all(labels):
        raise JaxrlError(f"--labels={args.labels!r}: a label is empty; give one name per DIR, comma-separated")
    result = write_report(args.dirs, args.out, labels, reps=args.reps, seed=args.seed)
    for label, metrics in result.aggregates.items():
        iqm = metrics["iqm"]
        print(f"{label}: IQM {result.score_kind} {iqm.point:.3f} [{iqm.low:.3f}, {iqm.high:.3f}] "
              f"({' x '.join(map(str, result.scores[label].shape))} runs x envs)")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    print(f"report: {result.out / 'report.md'}")
    return 0


def cmd_meta(args) -> int:
    from jaxrl import meta
    from jaxrl.devices import is_main

    spec = meta.load_spec(args.spec)
    _prepare_runtime(use_cache=not args.no_compile_cache)
    result = meta.run_meta(spec, out=args.out, progress=_progress(args), devices=args.devices)
    if is_main():
        print(meta.format_result(result))
        print(f"meta directory: {result.out_dir}  (learned objective: --set objective="
              f"{result.out_dir / 'mean_drift.npz'})")
    return 0


def cmd_envs(args) -> int:
    from jaxrl.envs.registry import list_ids, unavailable_ids

    ids, unavailable = list_ids(args.filter), unavailable_ids(args.filter)
    if not ids and not unavailable:
        raise JaxrlError(f"no environment id contains {args.filter!r}")
    if ids:
        print("\n".join(ids))
    if unavailable:
        width = max(map(len, unavailable))
        print("unavailable here (registered by their package, but they fail):", file=sys.stderr)
        for env_id, why in unavailable.items():
            print(f"  {env_id:<{width}}  {why}", file=sys.stderr)
    return 0


def cmd_algos(args) -> int:
    from jaxrl import algos
    from jaxrl.config import describe

    if args.name:
        algorithm = algos.get(args.name)
        print(f"{args.name}: {algorithm.description}\n{describe(algorithm.Config)}")
    else:
        for name in algos.ALGOS:
            print(f"{name:<8} {algos.get(name).description}")
    return 0


COMMANDS = {"train": cmd_train, "selfplay": cmd_selfplay, "resume": cmd_resume, "eval": cmd_eval, "sweep": cmd_sweep,
            "pbt": cmd_pbt, "bench": cmd_bench, "meta": cmd_meta, "report": cmd_report, "envs": cmd_envs,
            "algos": cmd_algos}


def _quiet_library_noise() -> None:
    """Failures reach the user as jaxrl's one-line errors; the libraries' own reports of them stay
    quiet (--debug shows everything). A failed checkpoint write makes orbax's writer threads report
    'Event loop is closed' many times over, through logging and as unraisable exceptions."""
    for name in ("absl", "asyncio"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    default = sys.unraisablehook

    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value)):
            default(unraisable)

    sys.unraisablehook = hook


def _one_line(err: JaxrlError) -> str:
    """The error's message and its notes (what else failed while handling it, e.g. records.Record.failures)."""
    return "; ".join([str(err), *getattr(err, "__notes__", ())])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if not args.debug:
        _quiet_library_noise()
    try:
        if hasattr(args, "coordinator"):  # before anything starts a JAX backend
            from jaxrl import devices

            devices.initialize(args.coordinator, args.num_processes, args.process_id)
        if hasattr(args, "imports"):  # before anything resolves an env id
            _import_modules(args)
        return COMMANDS[args.command](args)
    except Preempted as err:
        print(f"jaxrl {args.command}: {_one_line(err)}", file=sys.stderr)
        return 128 + err.signum
    except JaxrlError as err:
        if args.debug:
            raise
        print(f"jaxrl {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"jaxrl {args.command}: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The `jaxrl` process: `main`, with CPython's cyclic garbage collector set for a process that ends with the
    command. Tracing a program allocates millions of objects: at the default gen-0 threshold (700) the collector
    walks them some 800 times, and at exit it walks all that is left once more (0.3-0.6 s each on a 2-core CPU,
    ~8% of a CartPole run's process). Collecting young objects every 10,000 allocations and freezing what is
    alive at the end (nothing is freed by a collection just before exit) halves the first and skips the second."""
    gc.set_threshold(10_000, 10, 10)
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
