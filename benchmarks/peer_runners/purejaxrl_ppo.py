"""PureJaxRL's PPO (purejaxrl/ppo.py make_train, unchanged) on a gymnax env; one JSON line on stdout.

    python purejaxrl_ppo.py --repo benchmarks/.peers/purejaxrl --config '{"LR": 2.5e-4, ...}' --seeds 8

Adaptation: gymnax.make as seen by ppo.py returns the env with gymnax 0.0.x's 5-value step. Several
seeds are vmapped over keys, as in PureJaxRL's README.
"""

import types

import jax

from shared import FiveValueStep, emit, final_return, import_from, parser, run_seeds


def main() -> None:
    args = parser(__doc__).parse_args()
    import_from(args.repo / "purejaxrl")
    import gymnax
    import ppo  # PureJaxRL's own module

    ppo.gymnax = types.SimpleNamespace(make=lambda name: (lambda env, params: (FiveValueStep(env), params))(
        *gymnax.make(name)))
    config = dict(args.config)
    out, compile_s, run_s = run_seeds(ppo.make_train, config, args.seeds)
    info = jax.tree.map(lambda x: x.reshape(args.seeds, config["NUM_UPDATES"], -1), out["metrics"])
    done = info["returned_episode"]
    final = final_return(done.sum(-1), (info["returned_episode_returns"] * done).sum(-1))
    steps = config["NUM_UPDATES"] * config["NUM_STEPS"] * config["NUM_ENVS"] * args.seeds
    emit(steps, compile_s, run_s, final, "training episodes, last 5% of updates")


if __name__ == "__main__":
    main()
