"""Multi-agent benchmarks -> benchmarks/MULTIAGENT_RESULTS.md.

- IPPO and MAPPO on jaxmarl:MPE_simple_spread_v3 with JaxMARL's IPPO baseline config
  (16 envs x 128 steps, 4 epochs x 4 minibatches, lr 2.5e-4, 1e7 env steps, 1 seed), beside
  JaxMARL's own IPPO figures on this class of machine (63k env steps/s, return -60.9).
- Self-play on jaxrl:connect4 with a population of 8 policies (selfplay=population).
- Floors of that IPPO config on this machine, whatever the implementation: the env stepping alone
  (random actions) and the PPO learning phase alone (the same actor and critic, 4 epochs x 4
  minibatches over one rollout's 16*128*3 samples, clipped Adam). Together they bound the env
  steps/s any IPPO of this config can reach here.

Usage: python benchmarks/multiagent.py [--quick]   (--quick: 1e6 steps per case)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from common import machine, provenance

from jaxrl import api, distributions, envs
from jaxrl.algos import ippo as ippo_algo
from jaxrl.config import to_dict
from jaxrl.losses import ppo_policy_loss, value_loss
from jaxrl.networks import ActorCritic
from jaxrl.optim import make_optimizer

JAXMARL_IPPO = {"steps_per_s": 63_000, "return": -60.9}  # JaxMARL IPPO baseline, 1e7 steps, same class of CPU


def case(algo: str, total: float, **overrides) -> dict:
    config = api.resolve_config(algo, None, {"total_timesteps": int(total), **overrides})
    result = api.train(config, record=False, progress=True, eval_episodes=0)
    s = result.summary
    shown = {k: v for k, v in to_dict(config).items() if k in overrides or k in (
        "num_envs", "num_steps", "update_epochs", "num_minibatches", "lr", "total_timesteps")}
    return {"algo": algo, "env": config.env, "config": shown, "compile_s": s["compile_s"], "run_s": s["run_s"],
            "steps_per_s": s["steps_per_second"], "return": s["final_return_mean"]}


def timed(fn, *args, repeats: int = 20) -> tuple[float, float]:
    """(compile s, run s per call) of jit(fn)(*args)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        out = compiled(*args)
    jax.block_until_ready(out)
    return compile_s, (time.perf_counter() - start) / repeats


def floors() -> list[dict]:
    """The env-only and learning-only cost of one update of IPPO's default (JaxMARL baseline) config."""
    config = ippo_algo.Config()
    base = envs.make(config.env)
    env, params = envs.make_vec_env(base, config.num_envs), base.default_params
    steps = config.num_envs * config.num_steps
    num_actions = base.action_space(params).n

    def stepping(env_state, key):
        def step(env_state, key):
            act_key, step_key = jax.random.split(key)
            action = jax.random.randint(act_key, (config.num_envs, base.num_agents), 0, num_actions)
            obs, env_state, reward, *_ = env.step(step_key, env_state, action, params)
            return env_state, reward
        return jax.lax.scan(step, env_state, jax.random.split(key, config.num_steps))

    env_state = env.reset(jax.random.PRNGKey(0), params)[1]
    env_compile, env_s = timed(stepping, env_state, jax.random.PRNGKey(1))

    samples = steps * base.num_agents
    obs_dim = base.observation_space(params).shape[-1]
    network = ActorCritic(num_actions, True, 1, config.hidden_sizes, config.activation)
    key = jax.random.PRNGKey(0)
    batch = {"obs": jax.random.normal(key, (samples, obs_dim)), "action": jnp.zeros(samples, jnp.int32),
             "log_prob": jnp.full(samples, -jnp.log(num_actions)), "value": jnp.zeros(samples),
             "advantages": jax.random.normal(key, (samples,)), "targets": jnp.ones(samples)}
    net_params = network.init(key, batch["obs"][:1])
    optimizer = make_optimizer(config.lr, config.max_grad_norm)

    def loss(net_params, mb):
        logits, value_out = network.apply(net_params, mb["obs"])
        values = value_out[..., 0]  # a scalar critic
        log_prob = distributions.categorical_log_prob(logits, mb["action"])
        pi_loss = ppo_policy_loss(log_prob, mb["log_prob"], mb["advantages"], config.clip_eps)[0]
        entropy = distributions.categorical_entropy(logits).mean()
        return (pi_loss + config.vf_coef * value_loss(values, mb["value"], mb["targets"], config.clip_eps, True)
                - config.ent_coef * entropy)

    def learning(net_params, opt_state, key):
        def epoch(carry, key):
            order = jax.random.permutation(key, samples)
            minibatches = jax.tree.map(lambda x: x[order].reshape((config.num_minibatches, -1) + x.shape[1:]), batch)

            def minibatch(carry, mb):
                net_params, opt_state = carry
                updates, opt_state = optimizer.update(jax.grad(loss)(net_params, mb), opt_state, net_params)
                return (optax.apply_updates(net_params, updates), opt_state), None

            return jax.lax.scan(minibatch, carry, minibatches)[0], None

        return jax.lax.scan(epoch, (net_params, opt_state), jax.random.split(key, config.update_epochs))[0]

    learn_compile, learn_s = timed(learning, net_params, optimizer.init(net_params), key)
    shown = (f"num_envs={config.num_envs}, num_steps={config.num_steps}, update_epochs={config.update_epochs}, "
             f"num_minibatches={config.num_minibatches}, hidden_sizes={config.hidden_sizes}")
    return [{"case": "floor: env stepping alone, random actions", "config": shown, "compile_s": env_compile,
             "run_s": env_s, "steps_per_s": steps / env_s},
            {"case": "floor: PPO learning phase alone, no env", "config": shown, "compile_s": learn_compile,
             "run_s": learn_s, "steps_per_s": steps / learn_s},
            {"case": "floor: both (bound on any IPPO of this config here)", "config": shown,
             "compile_s": env_compile + learn_compile, "run_s": env_s + learn_s, "steps_per_s": steps / (env_s + learn_s)}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1e6 env steps per case")
    args = parser.parse_args()
    steps = 1e6 if args.quick else 1e7
    info = machine()
    rows = [case("ippo", steps), case("mappo", steps),
            case("ippo", steps / 2, env="jaxrl:connect4", selfplay="population", population_size=8,
                 num_envs=128, num_steps=32, opponent_groups=2,
                 # the settings measured in MULTIAGENT_RESULTS.md, pinned under the game's preset
                 hidden_sizes=(256, 256), ent_coef=0.01, normalize_advantages=True, scripted_opponents=(),
                 scripted_share=0.0)]
    bounds = floors()
    lines = ["# Multi-agent training", ""] + provenance("multiagent.py" + (" --quick" if args.quick else ""), info) + [
        "",
        "Compile = ahead-of-time compilation of the init and chunk programs; run = the compiled training;",
        "env steps/s = env steps / run s (one env step moves every agent of the env); return = training",
        "episodes of the last 5% of updates: the team return summed over agents on MPE (JaxMARL's",
        "convention), the learner's game result (+1 win, -1 loss) on connect-four.",
        "",
        "| case | config | compile s | run s | env steps/s | return |",
        "|---|---|---|---|---|---|",
        f"| JaxMARL IPPO baseline (reference, not re-run) | 16 envs x 128 steps, 1e7 steps | 12.6 | 159 | "
        f"{JAXMARL_IPPO['steps_per_s'] / 1e3:.0f}k | {JAXMARL_IPPO['return']} |",
    ]
    for r in rows:
        config = ", ".join(f"{k}={v}" for k, v in r["config"].items())
        lines.append(f"| {r['algo']} on {r['env']} | {config} | {r['compile_s']:.1f} | {r['run_s']:.1f} | "
                     f"{r['steps_per_s'] / 1e3:.0f}k | {r['return']} |")
    lines += ["", "Floors (per update of 16 x 128 = 2048 env steps; run s is per update):", "",
              "| case | config | compile s | run s per update | env steps/s |", "|---|---|---|---|---|"]
    for b in bounds:
        lines.append(f"| {b['case']} | {b['config']} | {b['compile_s']:.1f} | {b['run_s'] * 1e3:.1f} ms | "
                     f"{b['steps_per_s'] / 1e3:.0f}k |")
    ippo, bound = rows[0], bounds[-1]
    lines += ["", f"IPPO runs at {ippo['steps_per_s'] / JAXMARL_IPPO['steps_per_s']:.2f}x JaxMARL's IPPO env steps/s "
                  f"(reference figure from the same class of 2-core CPU, not measured side by side), and at "
                  f"{ippo['steps_per_s'] / bound['steps_per_s']:.2f}x the floor bound measured here; 1.5x JaxMARL's "
                  f"figure would be {1.5 * JAXMARL_IPPO['steps_per_s'] / bound['steps_per_s']:.2f}x that bound."]
    out = Path(__file__).with_name("MULTIAGENT_RESULTS.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
