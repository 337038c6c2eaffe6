"""purejaxql's PQN (purejaxql/pqn_gymnax.py make_train, unchanged) on a gymnax env; one JSON line on stdout.

    python purejaxql_pqn.py --repo benchmarks/.peers/purejaxql --config '{"NUM_ENVS": 32, ...}'

With WANDB_MODE "disabled" in the config, as in purejaxql's config.yaml, pqn_gymnax.py makes no wandb call.
Adaptation: its LogWrapper (gymnax's, whose step returns 6 values in gymnax 1.x) gives it the 5-value step it
was written for and counts the episodes of the final return in the env state. Several seeds are vmapped
over keys, as in its single_run.
"""

from shared import emit, import_from, parser, run_seeds, stats_log_wrapper, window_returns, window_updates


def main() -> None:
    args = parser(__doc__).parse_args()
    import_from(args.repo / "purejaxql")
    import pqn_gymnax  # purejaxql's own module

    config = dict(args.config)
    num_updates = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]  # pqn_gymnax.py's
    pqn_gymnax.LogWrapper = stats_log_wrapper((num_updates - window_updates(num_updates)) * config["NUM_STEPS"])
    out, compile_s, run_s = run_seeds(pqn_gymnax.make_train, config, args.seeds)
    _, (_, env_state), _, _ = out["runner_state"]
    final = float(window_returns(env_state, args.seeds).mean())
    emit(num_updates * config["NUM_STEPS"] * config["NUM_ENVS"] * args.seeds, compile_s, run_s, final,
         "training episodes, last 5% of updates")


if __name__ == "__main__":
    main()
