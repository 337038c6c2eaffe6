"""The suite language of `jaxrl bench`, the reference scores that normalise returns, and a suite's groups.

    name: classic
    seeds: 5                                   # seeds per (algorithm, env): seed, seed+1, ...
    seed: 0
    entries:
      - algo: ppo                              # the env's preset applies (`jaxrl algos ppo`)
        set: {num_envs: 8}                     # config overrides for every env of the entry (optional)
        envs: [gymnax:CartPole-v1, {env: gymnax:Acrobot-v1, total_timesteps: 200000}]
      - algo: ppo
        name: ppo-wide                         # a second config of an algorithm needs its own name
        set: {hidden_sizes: [256, 256]}
        envs: [gymnax:CartPole-v1]

Every (entry, env) is one group: one config whose seeds run vmapped in one compiled program and
leave one run directory, runs/<name>-<env>.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from jaxrl import algos
from jaxrl.config import ConfigError, check_keys, load_yaml
from jaxrl.sweep.spec import RESERVED, positive_int

SUITE_KEYS = ("name", "seeds", "seed", "entries")
ENTRY_KEYS = ("algo", "name", "set", "envs")
ENV_KEYS = ("env", "total_timesteps")


@dataclass(frozen=True)
class Group:
    """One (algorithm config, env): its seeds run in one compiled program, in run directory runs/<dir_name>."""

    name: str  # the entry's name: the `algo` column of scores.csv
    env: str
    config: object  # the validated config, num_seeds = the suite's seeds
    program: object  # its Program (built while checking the suite)

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.env.split(':')[-1].replace('/', '_')}"


@dataclass(frozen=True)
class Suite:
    name: str
    seeds: int
    seed: int
    groups: tuple  # Group, ...
    resolved: dict  # the suite with every default filled in (suite.yaml of a bench directory)


def shipped_suites() -> list[str]:
    return sorted(p.name[:-len(".yaml")] for p in resources.files("jaxrl.bench").joinpath("suites").iterdir()
                  if p.name.endswith(".yaml"))


def load_suite(suite: str | Path | dict) -> Suite:
    """A suite from a shipped name (`classic`), a YAML path or a mapping, checked without compiling."""
    if isinstance(suite, dict):
        return parse_suite(suite)
    if str(suite) in shipped_suites():
        path = resources.files("jaxrl.bench").joinpath("suites", f"{suite}.yaml")
        return parse_suite(yaml.safe_load(path.read_text()), f"suite {str(suite)!r}")
    if not Path(suite).is_file():
        raise ConfigError(f"suite {str(suite)!r} is neither a YAML file nor a shipped suite "
                          f"({', '.join(shipped_suites())})")
    return parse_suite(load_yaml(suite, "suite"), f"suite {str(suite)!r}")


def parse_suite(data: dict, where: str = "suite") -> Suite:
    """Validate a suite mapping: keys, algorithms, config fields, and that every env is one the algorithm
    can train on (each group's env is built; nothing compiles)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping with {', '.join(SUITE_KEYS)}")
    _check_known(data, SUITE_KEYS, where)
    seeds = positive_int(data, "seeds", 5, where)
    seed = positive_int(data, "seed", 0, where, minimum=0)
    entries = data.get("entries")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: entries is empty; give a list of {{algo, envs}} mappings")
    groups, resolved_entries = [], []
    for i, entry in enumerate(entries):
        at = f"{where} entry {i + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at} must be a mapping with keys {', '.join(ENTRY_KEYS)}")
        _check_known(entry, ENTRY_KEYS, at)
        algo = entry.get("algo")
        if not isinstance(algo, str):
            raise ConfigError(f"{at}: algo is missing (one of {', '.join(algos.ALGOS)})")
        algorithm = algos.get(algo)
        overrides = entry.get("set") or {}
        if not isinstance(overrides, dict):
            raise ConfigError(f"{at}: set must be a mapping of config fields")
        check_keys(algorithm.Config, overrides, f"{at} set")
        for key in (*RESERVED, "env"):
            if key in overrides:
                raise ConfigError(f"{at}: {key} is set by the suite (its seed and seeds, the entry's envs)")
        envs = entry.get("envs")
        if not isinstance(envs, list) or not envs:
            raise ConfigError(f"{at}: envs is empty; list env ids (see `jaxrl envs`)")
        name = str(entry.get("name", algo))
        resolved_envs = []
        for env in envs:
            env = {"env": env} if isinstance(env, str) else env
            if not isinstance(env, dict) or not isinstance(env.get("env"), str):
                raise ConfigError(f"{at}: an env is an id or a mapping {{env: ID, total_timesteps: N}}; got {env!r}")
            _check_known(env, ENV_KEYS, f"{at} env {env['env']!r}")
            steps = {"total_timesteps": positive_int(env, "total_timesteps", 1, at)} if "total_timesteps" in env else {}
            config = algos.resolve_config(algo, overrides={**overrides, **steps, "env": env["env"], "seed": seed,
                                                           "num_seeds": seeds})
            try:
                program = algorithm.make_program(config)  # builds the env: an unknown or unfit env fails here
            except ConfigError as err:
                raise ConfigError(f"{at} ({algo} on {env['env']}): {err}") from None
            group = Group(name, env["env"], config, program)
            if any(g.dir_name == group.dir_name for g in groups):
                raise ConfigError(f"{at}: {name} on {env['env']} is listed twice; give the second config its own "
                                  f"`name`")
            groups.append(group)
            resolved_envs.append({"env": env["env"], "total_timesteps": config.total_timesteps})
        resolved_entries.append({"algo": algo, "name": name, "set": overrides, "envs": resolved_envs})
    suite_name = str(data.get("name") or "bench")
    resolved = {"name": suite_name, "seeds": seeds, "seed": seed, "entries": resolved_entries}
    return Suite(suite_name, seeds, seed, tuple(groups), resolved)


def _check_known(data: dict, keys: tuple, where: str) -> None:
    unknown = [k for k in data if k not in keys]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(keys)}")


def load_references() -> dict[str, dict]:
    """{env id: {random, reference, source}} of the shipped references.yaml."""
    return yaml.safe_load(resources.files("jaxrl.bench").joinpath("references.yaml").read_text())

