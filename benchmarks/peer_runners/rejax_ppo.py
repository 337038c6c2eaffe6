"""Rejax's PPO (rejax 0.1.3 from PyPI, unchanged) on a gymnax env; one JSON line on stdout.

    python rejax_ppo.py --config '{"env": "CartPole-v1", "num_envs": 5, ...}' [--eval-episodes 128] [--lrs 1e-4,...]

Adaptations: the env is given to Rejax with gymnax 0.0.x's 5-value step, and with episode statistics in
its state (the mean return of the episodes finished in the last 5% of updates, jaxrl's final return;
Rejax keeps none); Rejax's evaluations inside training (its default: 1 + total_timesteps / eval_freq
evaluations of 128 episodes) are off. --eval-episodes N: one deterministic evaluation after training (the
most probable action), with Rejax's own `evaluate`, timed apart from the run. --lrs: the runs of a
learning-rate sweep, vmapped in one program (Rejax's way: learning_rate is a pytree field of the algorithm).
"""

import math
import time

import gymnax
import jax
import jax.numpy as jnp
from rejax import PPO
from rejax.evaluate import evaluate

from shared import EpisodeStats, compile_and_run, emit, parser, window_returns, window_updates


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--eval-episodes", type=int, default=0)
    p.add_argument("--lrs", help="comma-separated learning rates: one run each, vmapped")
    args = p.parse_args()
    config = dict(args.config)
    env, env_params = gymnax.make(config.pop("env"))
    num_updates = math.ceil(config["total_timesteps"] / (config["num_envs"] * config["num_steps"]))
    env = EpisodeStats(env, (num_updates - window_updates(num_updates)) * config["num_steps"])
    algo = PPO.create(env=env, env_params=env_params, **config, skip_initial_evaluation=True,
                      eval_freq=config["total_timesteps"])  # one scan step of all updates, no evaluation
    algo = algo.replace(eval_callback=lambda algo, ts, rng: ())
    key = jax.random.PRNGKey(0)
    lrs = [float(x) for x in args.lrs.split(",")] if args.lrs else None
    if lrs:
        train = jax.vmap(lambda lr: algo.replace(learning_rate=lr).train(key)[0])
        (ts, compile_s, run_s), runs = compile_and_run(train, jnp.asarray(lrs)), len(lrs)
    else:
        (ts, compile_s, run_s), runs = compile_and_run(lambda k: algo.train(k)[0], key), 1
    per_run = window_returns(ts.env_state, runs)
    extra = {"final_return_per_run": per_run.tolist()} if lrs else {}
    final, kind = float(per_run.mean()), "training episodes, last 5% of updates"
    if args.eval_episodes:
        def greedy(obs, rng):  # Rejax's make_act, with the most probable action instead of a sample
            dist = algo.actor.apply(ts.actor_ts.params, obs[None], method="_action_dist")
            return jnp.squeeze(dist.mode())

        start = time.perf_counter()
        _, returns = jax.block_until_ready(
            evaluate(greedy, jax.random.PRNGKey(1), env, env_params, args.eval_episodes))
        extra.update(eval_s=time.perf_counter() - start, final_return_training=final)
        final, kind = float(returns.mean()), f"deterministic evaluation, {args.eval_episodes} episodes"
    emit(num_updates * config["num_envs"] * config["num_steps"] * runs, compile_s, run_s, final, kind, **extra)


if __name__ == "__main__":
    main()
