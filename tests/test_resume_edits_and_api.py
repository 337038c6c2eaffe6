"""Hand edits of config.yaml on resume, `jaxrl.load_policy`, and envs registered by `--import`d modules."""

import json
import signal
import sys

import jax
import numpy as np
import pytest
import yaml

import jaxrl
from jaxrl import api, checkpoint, cli, envs
from jaxrl.algos import ppo
from jaxrl.cache import enable_compilation_cache
from jaxrl.envs import registry
from jaxrl.errors import JaxrlError, Preempted
from jaxrl.preemption import PreemptionGuard

# 8 updates of 4 envs x 64 steps, 2 seeds, in chunks of 2 updates: a few seconds.
TINY = dict(env="gymnax:CartPole-v1", total_timesteps=2048, num_envs=4, num_steps=64, hidden_sizes=(16,),
            updates_per_chunk=2, num_seeds=2)
TINY_ARGS = ["--total-timesteps", "2048", "--set", "num_envs=4", "--set", "num_steps=64", "--set", "hidden_sizes=[16]",
             "--no-progress", "--eval-episodes", "0"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    enable_compilation_cache()  # as the jaxrl command does: the later runs of the same program load it
    out = tmp_path_factory.mktemp("runs") / "full"
    return api.train(ppo.Config(**TINY), out=str(out), progress=False, eval_episodes=0, checkpoint_every=2)


def preempted_run(path, monkeypatch):
    """A run stopped by SIGTERM after its first chunk (update 2), with a checkpoint there."""
    with monkeypatch.context() as m:
        m.setattr(PreemptionGuard, "__enter__", lambda guard: setattr(guard, "signum", signal.SIGTERM) or guard)
        with pytest.raises(Preempted):
            api.train(ppo.Config(**TINY), out=str(path), progress=False, eval_episodes=0, checkpoint_every=2)
    assert checkpoint.steps(path / "checkpoints") == [2]
    return path


def edit_config(run_dir, **values):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config, **values}, sort_keys=False))


def test_config_yaml_edits_of_dynamic_fields_apply_on_resume_and_are_recorded(uninterrupted, tmp_path, monkeypatch,
                                                                             capsys):
    run = preempted_run(tmp_path / "edited", monkeypatch)
    original = (run / "config.yaml").read_text()
    for field, value in (("num_envs", 8), ("total_timesteps", 4096)):  # static and run fields stay refused
        edit_config(run, **{field: value})
        assert cli.main(["resume", str(run), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{field}: {TINY[field]} -> {value}" in err, err
        assert "only dynamic hyperparameters can change on resume" in err
        (run / "config.yaml").write_text(original)

    edit_config(run, lr=3e-3)
    result = api.resume(run, overrides={"gamma": 0.95}, progress=False, eval_episodes=0)
    for name, value in (("lr", 3e-3), ("gamma", 0.95)):
        np.testing.assert_array_equal(result.state.hparams[name], np.full(2, value, np.float32))
        assert yaml.safe_load((run / "config.yaml").read_text())[name] == value  # config.yaml is what ran
    _, info = checkpoint.restore_info(run / "checkpoints")
    assert info["config"]["lr"] == 3e-3 and info["config"]["gamma"] == 0.95
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["config_changes"] == [
        {"after_update": 2, "field": "lr", "old": 1e-3, "new": 3e-3, "source": "config.yaml"},
        {"after_update": 2, "field": "gamma", "old": 0.99, "new": 0.95, "source": "--set"}]
    before = jax.tree.leaves(uninterrupted.state.params)
    after = jax.tree.leaves(result.state.params)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # the edit changed the training


def test_load_policy_acts_like_the_evaluated_policy(uninterrupted, tmp_path):
    env = envs.make("gymnax:CartPole-v1")
    obs = jax.vmap(lambda k: env.reset(k, env.default_params)[0])(jax.random.split(jax.random.PRNGKey(1), 64))
    obs = obs + jax.random.normal(jax.random.PRNGKey(2), obs.shape)  # states off the reset distribution too
    act = ppo.make_policy(ppo.Config(**TINY), env, env.default_params)  # what evaluate_state plays
    trained = ppo.policy_state(uninterrupted.state)
    for seed_index in (0, 1):
        policy = jaxrl.load_policy(uninterrupted.run_dir, seed_index=seed_index)
        expected = act(jax.tree.map(lambda x: x[seed_index], trained), obs)
        np.testing.assert_array_equal(policy(obs), expected)  # batched
        assert policy(obs[3], jax.random.PRNGKey(0)) == expected[3]  # one observation; the key is not needed
    assert len(set(np.asarray(expected).tolist())) == 2  # the observations tell the actions apart
    sampled = jaxrl.load_policy(uninterrupted.run_dir, checkpoint=4, deterministic=False)
    assert sampled(obs, jax.random.PRNGKey(0)).shape == (64,)
    with pytest.raises(JaxrlError, match="needs a key"):
        sampled(obs)
    with pytest.raises(JaxrlError, match="seed_index=2: the run has 2 seeds"):
        jaxrl.load_policy(uninterrupted.run_dir, seed_index=2)
    with pytest.raises(JaxrlError, match="is not a run directory: it has no config.yaml"):
        jaxrl.load_policy(tmp_path)


ENV_MODULE = """
from jaxrl import envs

envs.register("testlab:CartPole-copy", lambda **kw: envs.make("gymnax:CartPole-v1", **kw))
"""


@pytest.fixture
def fresh_registry(monkeypatch):
    """The registry of a new process: no user ids, no modules imported."""
    monkeypatch.setattr(registry, "_USER", {})
    monkeypatch.setattr(registry, "_IMPORTED", [])
    monkeypatch.delitem(sys.modules, "testlab_envs", raising=False)


def test_envs_of_an_imported_module_train_and_evaluate_without_import_again(tmp_path, monkeypatch, capfd,
                                                                            fresh_registry):
    # capfd: the unknown id's suggestions import jaxmarl, which rebinds sys.stdout and sys.stderr
    (tmp_path / "testlab_envs.py").write_text(ENV_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["train", "--env", "testlab:nope", *TINY_ARGS]) == 2
    assert "--import MODULE" in capfd.readouterr().err
    run = tmp_path / "run"
    assert cli.main(["train", "--import", "testlab_envs", "--env", "testlab:CartPole-copy", "--out", str(run),
                     *TINY_ARGS]) == 0
    assert json.loads((run / "metadata.json").read_text())["imports"] == ["testlab_envs"]
    capfd.readouterr()

    monkeypatch.setattr(registry, "_USER", {})  # a new process: eval imports the recorded module again
    monkeypatch.setattr(registry, "_IMPORTED", [])
    monkeypatch.delitem(sys.modules, "testlab_envs")
    assert cli.main(["eval", str(run), "--episodes", "2"]) == 0
    assert "testlab:CartPole-copy" in registry._USER and "checkpoint 8" in capfd.readouterr().out

    monkeypatch.setattr(registry, "_USER", {})
    monkeypatch.setattr(registry, "_IMPORTED", [])
    monkeypatch.delitem(sys.modules, "testlab_envs")
    (tmp_path / "testlab_envs.py").unlink()
    assert cli.main(["eval", str(run)]) == 2
    err = capfd.readouterr().err
    assert "'testlab_envs'" in err and "metadata.json" in err and "No module named" in err, err


def test_import_takes_a_file_path_and_reports_failures(tmp_path, fresh_registry):
    (tmp_path / "my_envs.py").write_text(ENV_MODULE)
    registry.import_modules([str(tmp_path / "my_envs.py")], "--import")
    registry.import_modules([str(tmp_path / "my_envs.py")], "--import")  # once only: ids are registered once
    assert "testlab:CartPole-copy" in registry._USER
    assert registry.imported_modules() == [str((tmp_path / "my_envs.py").resolve())]
    (tmp_path / "broken.py").write_text("raise ValueError('no such lab')")
    for spec, message in ((str(tmp_path / "missing.py"), "no such file"),
                          (str(tmp_path / "broken.py"), "ValueError: no such lab"),
                          ("no_such_module_here", "No module named 'no_such_module_here'")):
        with pytest.raises(JaxrlError, match=message):
            registry.import_modules([spec], "--import")
