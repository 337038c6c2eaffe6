"""JaxMARL's IPPO baseline (baselines/IPPO/ippo_ff_mpe.py make_train, unchanged); one JSON line on stdout.

    python jaxmarl_ippo.py --repo benchmarks/.peers/JaxMARL --config '{"ENV_NAME": "MPE_simple_spread_v3", ...}'

wandb is initialised disabled, as JaxMARL's own main does with its config (WANDB_MODE: disabled): the
baseline still calls wandb.log from the device once per update. Adaptation: its log wrapper also puts
`returned_episode_returns * returned_episode` in the info, whose per-update mean (the baseline averages
the info over steps and agents) gives the return of the episodes that finished, the same final return
as jaxrl's. Several seeds are vmapped over keys, as in the baseline's main.
"""

import jax

from shared import emit, final_return, import_from, parser, run_seeds


def main() -> None:
    args = parser(__doc__).parse_args()
    import_from(args.repo / "baselines" / "IPPO")
    import ippo_ff_mpe  # JaxMARL's own module
    import wandb

    class FinishedEpisodeLog(ippo_ff_mpe.LogWrapper):
        def step(self, key, state, action):
            obs, state, reward, done, info = super().step(key, state, action)
            info["finished_return"] = info["returned_episode_returns"] * info["returned_episode"]
            return obs, state, reward, done, info

    ippo_ff_mpe.LogWrapper = FinishedEpisodeLog
    wandb.init(mode="disabled")
    config = dict(args.config)
    out, compile_s, run_s = run_seeds(ippo_ff_mpe.make_train, config, args.seeds)
    metrics = jax.tree.map(lambda x: x.reshape(args.seeds, config["NUM_UPDATES"]), out["metrics"])
    final = final_return(metrics["returned_episode"], metrics["finished_return"])
    steps = config["NUM_UPDATES"] * config["NUM_STEPS"] * config["NUM_ENVS"] * args.seeds
    emit(steps, compile_s, run_s, final, "training episodes, last 5% of updates (team return)")


if __name__ == "__main__":
    main()
