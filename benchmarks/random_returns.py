"""The `random` scores of jaxrl/bench/references.yaml: mean return of a uniform random policy.

    python benchmarks/random_returns.py gymnax:CartPole-v1 gymnax:Acrobot-v1 --episodes 100

Each episode runs from `reset` with the env's default parameters until it terminates or its time limit
truncates it, taking actions drawn uniformly from the action space (a Box's bounds; every agent its
own on a multi-agent env, whose return is the team's, summed over agents as jaxrl's ippo/mappo count
it). The episodes are vmapped in one compiled program; seed 0.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import envs


def random_returns(env_id: str, episodes: int = 100, seed: int = 0, max_steps: int = 100_000) -> np.ndarray:
    """Returns of `episodes` uniform-random-policy episodes of `env_id`."""
    env = envs.make(env_id)
    params = env.default_params
    space = env.action_space(params)

    def act(key):
        if env.num_agents is None:
            return space.sample(key)
        return jax.vmap(space.sample)(jax.random.split(key, env.num_agents))

    def episode(key):
        key, reset_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def running(carry):
            return ~carry[3] & (carry[4] < max_steps)

        def step(carry):
            key, state, total, _, t = carry
            key, act_key, step_key = jax.random.split(key, 3)
            _, state, reward, terminated, truncated, _ = env.step(step_key, state, act(act_key), params)
            done = jnp.any(terminated) | jnp.any(truncated)
            return key, state, total + jnp.sum(reward), done, t + 1

        return jax.lax.while_loop(running, step, (key, state, jnp.float32(0.0), jnp.bool_(False), 0))[2]

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    return np.asarray(jax.jit(jax.vmap(episode))(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("env_ids", nargs="+")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    for env_id in args.env_ids:
        start = time.perf_counter()
        returns = random_returns(env_id, args.episodes)
        print(f"{env_id}: random {returns.mean():.2f} (std {returns.std():.2f}, {args.episodes} episodes, "
              f"{time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
