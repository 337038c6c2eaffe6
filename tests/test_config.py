import dataclasses

import jax
import pytest

from jaxrl import api
from jaxrl.algos import ppo
from jaxrl.algos.base import RolloutState
from jaxrl.config import ConfigError, hparams, load_yaml, parse_overrides, recorded_config, to_dict
from jaxrl.errors import JaxrlError


def test_impossible_batch_shape_names_the_numbers():
    with pytest.raises(ConfigError, match=r"num_envs\*num_steps=5\*100=500 is not divisible by num_minibatches=3"):
        ppo.Config(num_envs=5, num_steps=100, num_minibatches=3)


@pytest.mark.parametrize("overrides,message", [
    ({"lrr": 1e-3}, "unknown config key 'lrr'.*did you mean lr"),
    ({"lr": "fast"}, "lr='fast': expected float, got str"),
    ({"num_envs": 2.5}, "num_envs=2.5: expected int"),
    ({"gamma": 1.5}, r"gamma=1.5: must be <= 1.0"),
    ({"lr": 0.0}, r"lr=0.0: must be > 0.0"),
    ({"activation": "sigmoid"}, "activation='sigmoid': must be one of"),
    ({"anneal_lr": 1}, "anneal_lr=1: expected bool"),
    ({"total_timesteps": 100}, "smaller than one update"),
])
def test_invalid_values_raise_errors_naming_the_field(overrides, message):
    with pytest.raises(JaxrlError, match=message):
        api.resolve_config("ppo", overrides=overrides)


def test_overrides_parse_as_yaml_and_coerce_numbers():
    values = parse_overrides(["lr=1e-3", "total_timesteps=5e5", "hidden_sizes=[32, 32]", "anneal_lr=false"])
    config = api.resolve_config("ppo", overrides=values)
    assert config.lr == 1e-3 and config.total_timesteps == 500_000
    assert config.hidden_sizes == (32, 32) and config.anneal_lr is False
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["lr"])


def test_yaml_round_trip_and_malformed_yaml(tmp_path):
    import yaml

    config = api.resolve_config("ppo", overrides={"lr": 3e-4, "num_seeds": 2})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"algo": "ppo", **to_dict(config)}))
    assert api.resolve_config("ppo", str(path)) == config
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_static_dynamic_split():
    config = ppo.Config()
    assert set(hparams(config)) == {"lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm"}


def test_presets_apply_under_user_values():
    config = api.resolve_config("ppo", overrides={"env": "brax:inverted_pendulum", "lr": 1e-3})
    assert config.normalize_obs is True and config.lr == 1e-3


def test_runs_recorded_before_a_field_was_added_or_renamed_still_load(tmp_path):
    """Resume and eval read a run's config.yaml and its checkpoints' configs: a renamed field is read under its new
    name, a field added since counts as its default, and a feed-forward PPO state keeps its pre-recurrence layout
    (so older checkpoints restore)."""
    path = tmp_path / "config.yaml"
    path.write_text("algo: ippo\nrecurrent: true\ngru_size: 16\n")
    assert api.resolve_config("ippo", str(path)).memory_size == 16
    written = recorded_config(ppo.Config, {"env": "gymnax:CartPole-v1", "num_envs": 4})  # before `recurrent`
    assert (written["recurrent"], written["memory"], written["num_envs"], written["hidden_sizes"]) == (
        False, "gru", 4, [64, 64])
    program = ppo.make_program(ppo.Config(total_timesteps=512))
    state = jax.eval_shape(program.init, jax.random.PRNGKey(0), hparams(ppo.Config()))
    assert type(state) is RolloutState and not hasattr(state, "memory")


def test_a_config_redefaults_a_shared_field_keeping_its_help_and_limits():
    from jaxrl.algos import dqn, ippo
    from jaxrl.algos.base import RolloutSchedule
    from jaxrl.config import SeedFields, static

    shared = {f.name: f for f in dataclasses.fields(RolloutSchedule)}["num_envs"]
    for cls, default in ((ppo.Config, 8), (ippo.Config, 16), (dqn.Config, 10)):
        field = {f.name: f for f in dataclasses.fields(cls)}["num_envs"]
        assert field.default == default and field.metadata == shared.metadata
    with pytest.raises(ConfigError, match="num_envs=0: must be >= 1"):
        ippo.Config(num_envs=0)
    with pytest.raises(TypeError, match="declare a new config field with static"):
        @dataclasses.dataclass(frozen=True)
        class Bad(RolloutSchedule, SeedFields):  # a plain value for a field no base declares
            num_envz: int = 4
    @dataclasses.dataclass(frozen=True)
    class Good(RolloutSchedule, SeedFields):
        rollout_note: str = static("", "a new field, declared in full")
        num_steps: int = 32
    assert Good().num_steps == 32 and Good().num_envs == 8
