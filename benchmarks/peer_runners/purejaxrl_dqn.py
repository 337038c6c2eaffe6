"""PureJaxRL's DQN (purejaxrl/dqn.py make_train, unchanged) on a gymnax env; one JSON line on stdout.

    python purejaxrl_dqn.py --repo benchmarks/.peers/purejaxrl --config '{"NUM_ENVS": 10, ...}'

Adaptations: dqn.py's LogWrapper (gymnax's, whose step returns 6 values in gymnax 1.x) gives it the 5-value
step it was written for and counts the episodes of the final return (dqn.py's metrics keep only the mean
over envs of each one's last return). dqn.py copies its first parameters with jax.tree_map, since removed
from jax: it gets jax.tree.map. dqn.py replaces the key it is given by PRNGKey(0) once its envs are reset,
so several seeds would differ only in their first env states; the benchmark runs one.
"""

import jax

from shared import emit, import_from, parser, run_seeds, stats_log_wrapper, window_returns, window_updates


def main() -> None:
    args = parser(__doc__).parse_args()
    import_from(args.repo / "purejaxrl")
    import dqn  # PureJaxRL's own module

    config = dict(args.config)
    num_updates = config["TOTAL_TIMESTEPS"] // config["NUM_ENVS"]  # dqn.py's: one step of each env per update
    dqn.LogWrapper = stats_log_wrapper(num_updates - window_updates(num_updates))
    jax.tree_map = jax.tree.map
    out, compile_s, run_s = run_seeds(dqn.make_train, config, args.seeds)
    _, _, env_state, _, _ = out["runner_state"]
    final = float(window_returns(env_state, args.seeds).mean())
    emit(num_updates * config["NUM_ENVS"] * args.seeds, compile_s, run_s, final,
         "training episodes, last 5% of updates")


if __name__ == "__main__":
    main()
