"""The `jaxrl` command as a user runs it: real subprocesses, real run directories. Errors raised before anything
compiles are checked through `cli.main` in this process (the same code, without ~3 s of interpreter start and
imports each), and once through a real subprocess."""

import json
import subprocess
import sys

import pytest

from jaxrl import cli


def error_of(capsys, *args) -> str:
    """stderr of `jaxrl ARGS` run through `cli.main` in this process, which must exit with 2."""
    assert cli.main(list(args)) == 2
    return capsys.readouterr().err


def jaxrl(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jaxrl.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """`jaxrl train` with no config arguments: PPO on CartPole with the default config."""
    out = tmp_path_factory.mktemp("runs") / "cartpole"
    result = jaxrl("train", "--out", str(out), "--no-progress", "--eval-episodes", "5")
    assert result.returncode == 0, result.stderr
    return out, result


def test_default_train_reaches_475_on_cartpole_and_writes_the_record(trained_run):
    out, result = trained_run
    assert f"run directory: {out}" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_return_mean"] >= 475, summary
    assert summary["eval"]["return_mean"] >= 475, summary
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "finished" and meta["versions"]["jax"] and meta["end_time"]
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("seed,update,env_steps,episodes,episode_return")
    assert len(lines) == 1 + 250_000 // 512
    assert (out / "curves.png").stat().st_size > 10_000
    assert (out / "config.yaml").read_text().startswith("algo: ppo\nenv: gymnax:CartPole-v1")


def test_eval_restores_the_checkpoint(trained_run):
    out, _ = trained_run
    result = jaxrl("eval", str(out), "--episodes", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["episodes"] == 3 and report["return_mean"] >= 475


def test_rerun_from_config_yaml_and_refuse_to_overwrite(trained_run, tmp_path):
    out, _ = trained_run
    before = (out / "summary.json").read_text()
    result = jaxrl("train", "--config", str(out / "config.yaml"), "--out", str(out))
    assert result.returncode == 2
    assert "already exists and is not empty" in result.stderr
    assert (out / "summary.json").read_text() == before


@pytest.mark.parametrize("args,message", [
    (["train", "--env", "gymnax:CartPol-v1"], "closest: gymnax:CartPole-v1"),
    (["train", "--algo", "ppx"], "unknown algorithm 'ppx'; did you mean ppo"),
    (["train", "--set", "num_minibatches=3", "--set", "num_envs=5", "--set", "num_steps=100"],
     "num_envs*num_steps=5*100=500 is not divisible by num_minibatches=3"),
    (["train", "--set", "foo=1"], "unknown config key 'foo'"),
    (["train", "--set", "lr=abc"], "lr='abc': expected float"),
    (["train", "--seeds", "0"], "num_seeds=0: must be >= 1"),
    (["eval", "/nonexistent/run"], "does not exist"),
    (["envs", "no-such-env-anywhere"], "no environment id contains"),
])
def test_bad_input_gives_one_line_error(args, message, capsys):
    stderr = error_of(capsys, *args)
    assert message in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_the_command_exits_2_with_one_line_on_bad_input():
    result = jaxrl("train", "--env", "gymnax:CartPol-v1")
    assert result.returncode == 2 and "closest: gymnax:CartPole-v1" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_malformed_yaml_and_corrupted_run_dir(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    assert "is not valid YAML" in error_of(capsys, "train", "--config", str(bad))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("algo: ppo\nenv: gymnax:CartPole-v1\n")
    assert "no checkpoint found" in error_of(capsys, "eval", str(run))
    (run / "config.yaml").write_text("algo: ppo\nlr: [\n")
    assert "not valid YAML" in error_of(capsys, "eval", str(run))


def test_envs_and_algos_listings():
    result = jaxrl("envs", "cartpole")
    assert result.returncode == 0 and result.stdout.split() == ["gymnax:CartPole-v1"]
    result = jaxrl("algos", "ppo")
    assert result.returncode == 0 and "num_minibatches" in result.stdout and "dynamic" in result.stdout
    from jaxrl.algos import dqn
    from jaxrl.config import describe

    lines = describe(dqn.Config).splitlines()  # its field names are longer than ppo's
    kind = lines[0].index("kind")
    assert {line[kind:].split()[0] for line in lines} == {"kind", "static", "dynamic", "run"}
