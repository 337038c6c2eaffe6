"""Rejax's SAC or TD3 (rejax 0.1.3 from PyPI, unchanged) on a gymnax env; one JSON line on stdout.

    python rejax_offpolicy.py --algo sac --config '{"env": "Pendulum-v1", "num_envs": 1, ...}' [--eval-episodes 128]

Adaptations as in rejax_ppo.py: gymnax 0.0.x's 5-value step with episode statistics in the env state (the
mean return of the episodes finished in the last 5% of env steps), Rejax's evaluations inside training
off. --eval-episodes N: one deterministic evaluation after training with Rejax's own `evaluate`, timed
apart from the run: TD3's actor as it is, SAC's squashed mean (Rejax's own `act` samples), both on the
observations normalised as in training.
"""

import time

import gymnax
import jax
import jax.numpy as jnp
from rejax import SAC, TD3
from rejax.evaluate import evaluate

from shared import EpisodeStats, compile_and_run, emit, parser, window_returns, window_updates

ALGOS = {"sac": SAC, "td3": TD3}


def deterministic_act(algo, ts, name: str):
    def act(obs, rng):
        if algo.normalize_observations:
            obs = algo.normalize_obs(ts.obs_rms_state, obs)
        obs = obs[None]
        if name == "td3":
            return jnp.squeeze(algo.actor.apply(ts.actor_ts.params, obs))
        mean = algo.actor.apply(ts.actor_ts.params, obs, method="_action_dist").mean()
        return jnp.squeeze(algo.actor.action_loc + jnp.tanh(mean) * algo.actor.action_scale)

    return act


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--algo", choices=tuple(ALGOS), required=True)
    p.add_argument("--eval-episodes", type=int, default=0)
    args = p.parse_args()
    config = dict(args.config)
    env, env_params = gymnax.make(config.pop("env"))
    steps_per_env = config["total_timesteps"] // config["num_envs"]
    env = EpisodeStats(env, steps_per_env - window_updates(steps_per_env))
    algo = ALGOS[args.algo].create(env=env, env_params=env_params, **config, skip_initial_evaluation=True,
                                   eval_freq=config["total_timesteps"])  # one scan step of all updates
    algo = algo.replace(eval_callback=lambda algo, ts, rng: ())
    (ts, compile_s, run_s) = compile_and_run(lambda k: algo.train(k)[0], jax.random.PRNGKey(0))
    final, kind = float(window_returns(ts.env_state, 1).mean()), "training episodes, last 5% of env steps"
    extra = {}
    if args.eval_episodes:
        start = time.perf_counter()
        _, returns = jax.block_until_ready(evaluate(deterministic_act(algo, ts, args.algo), jax.random.PRNGKey(1),
                                                    env, env_params, args.eval_episodes))
        extra.update(eval_s=time.perf_counter() - start, final_return_training=final)
        final, kind = float(returns.mean()), f"deterministic evaluation, {args.eval_episodes} episodes"
    emit(steps_per_env * config["num_envs"], compile_s, run_s, final, kind, **extra)


if __name__ == "__main__":
    main()
