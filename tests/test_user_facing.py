"""What a user meets first: per-command help, `jaxrl envs`, progress output, warnings, self-play
evaluation counts, scripts/train.sh."""

import importlib
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import api, cli, envs, plots, records
from jaxrl.algos import ippo
from jaxrl.config import hparams
from jaxrl.errors import JaxrlError
from jaxrl.evaluate import default_eval_episodes
from jaxrl.progress import Progress
from jaxrl.envs.registry import _SOURCES, list_ids, unavailable_ids
from jaxrl.stats import nanmean

ROOT = Path(__file__).resolve().parents[1]


def help_text(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_selfplay_help_names_its_own_defaults(capsys):
    selfplay = help_text(capsys, "selfplay")
    assert "default ippo" in selfplay and "jaxrl:tictactoe" in selfplay
    assert "CartPole" not in selfplay and "default ppo" not in selfplay
    assert "games per seat per seed against each of the game's scripted players (default 100" in selfplay
    train = help_text(capsys, "train")
    assert "default ppo" in train and "default gymnax:CartPole-v1" in train


# --- jaxrl envs ----------------------------------------------------------------------------------------------

def test_envs_lists_only_ids_that_work_and_the_others_apart_with_a_reason(capsys):
    assert cli.main(["envs"]) == 0
    out, err = capsys.readouterr()
    listed = out.split()
    assert "gymnax:CartPole-v1" in listed and "jaxrl:tictactoe" in listed and "jaxmarl:SMAX/3m" in listed
    assert "jaxmarl:storm_np" not in listed and "gymnax:MNISTBandit-bsuite" not in listed
    assert re.search(r"^  jaxmarl:storm_np +observations are not keyed by agent$", err, re.M)
    assert cli.main(["envs", "storm"]) == 0  # only unavailable ids match: shown, not an error
    out, err = capsys.readouterr()
    assert out == "" and "jaxmarl:storm_2p" in err


def test_listing_envs_imports_no_env_package():
    code = ("import sys; from jaxrl import cli; cli.main(['envs']); "
            "print([m for m in ('gymnax', 'brax', 'jaxmarl') if m in sys.modules], file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"


def test_static_env_lists_cover_what_each_package_registers():
    for source, module in _SOURCES.items():
        adapter = importlib.import_module(module)
        assert not set(adapter.IDS) & set(adapter.UNAVAILABLE), source
        assert set(adapter.ids()) == set(adapter.IDS) | set(adapter.UNAVAILABLE), \
            f"{source}: the package's ids changed; update IDS / UNAVAILABLE in {module}"


def test_an_unavailable_env_fails_with_its_reason_in_one_line(monkeypatch):
    from jaxrl.envs import gymnax_adapter

    def offline(name, **kwargs):
        raise OSError("Name or service\nnot known")

    monkeypatch.setitem(gymnax_adapter.UNAVAILABLE, "CartPole-v1", "downloads its data (needs network access)")
    monkeypatch.setattr(gymnax_adapter, "make", offline)
    with pytest.raises(JaxrlError, match=r"^gymnax:CartPole-v1 is unavailable here: downloads its data \(needs "
                                         r"network access\) \(OSError: Name or service not known\)$"):
        envs.make("gymnax:CartPole-v1")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_listed_env_constructs_and_resets():
    failed = {}
    for env_id in list_ids():
        try:
            env = envs.make(env_id)
            jax.eval_shape(env.reset, jax.random.PRNGKey(0), env.default_params)
            env.observation_space(env.default_params), env.action_space(env.default_params)
        except Exception as err:
            failed[env_id] = f"{type(err).__name__}: {err}"
    assert not failed, f"listed but broken (move them to UNAVAILABLE with the reason): {failed}"
    assert "jaxmarl:storm_np" in unavailable_ids()


# --- progress and warnings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("progress", [True, "lines"])
def test_progress_prints_a_plain_line_per_tenth_when_not_a_terminal_or_asked(progress, capsys, monkeypatch):
    if progress == "lines":  # asked for (--no-progress) even on a terminal
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with Progress(1000, progress) as bar:
        bar.open()
        for steps in range(0, 1001, 50):
            bar.chunk(steps, 12_345.0, float("nan") if steps < 100 else 1.5)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 11 and lines[-1].startswith("train 100% 1,000/1,000 steps, 12k steps/s, return 1.5")
    assert "no episode finished" in lines[0]


def test_progress_off_prints_nothing(capsys):
    with Progress(1000, False) as bar:
        bar.compiling("x")
        bar.compiled(1.0)
        bar.chunk(1000, 1.0, 1.0)
    assert capsys.readouterr().err == ""


@pytest.mark.timeout(240)
def test_a_short_run_prints_progress_lines_and_no_runtime_warning(tmp_path, capsys):
    # Pendulum episodes last 200 steps: no episode ends in the first 12 updates nor in the last one,
    # the all-NaN slices that made numpy warn in the summary and curves.png
    args = ["train", "--env", "gymnax:Pendulum-v1", "--total-timesteps", "1280", "--seeds", "2", "--set", "num_envs=4",
            "--set", "num_steps=16", "--set", "num_minibatches=2", "--set", "hidden_sizes=[8]",
            "--out", str(tmp_path / "run"), "--no-progress", "--eval-episodes", "0"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err
    assert len(re.findall(r"^train +\d+% [\d,]+/1,280 steps, .*k steps/s, ", err, re.M)) >= 10
    assert "final return: none (no training episode finished near the end of training)" in out
    assert (tmp_path / "run" / "curves.png").is_file()


def test_nanmean_and_curves_of_seeds_without_episodes_do_not_warn(tmp_path):
    metrics = {"episodes": np.array([[0, 1, 0], [0, 0, 2]], np.float32),
               "episode_return_sum": np.array([[0, 5, 0], [0, 0, 8]], np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = nanmean(records.mean_returns(metrics), axis=0)
        plots.plot_curves(tmp_path, metrics, 10, "no episodes early on")
    np.testing.assert_array_equal(mean, [np.nan, 5.0, 4.0])


# --- self-play evaluation ------------------------------------------------------------------------------------

@pytest.mark.timeout(240)
def test_selfplay_eval_plays_the_games_asked_per_seat_and_reports_or_varies_repeated_games(capsys):
    config = api.resolve_config("ippo", None, {"env": "jaxrl:tictactoe", "num_envs": 4, "num_steps": 4,
                                               "hidden_sizes": [8], "total_timesteps": 16, "selfplay": "latest"})
    assert default_eval_episodes(config) == 100
    program = ippo.make_program(config)
    state = jax.jit(program.init)(jax.random.PRNGKey(0), hparams(config))
    policy = jax.tree.map(lambda x: x[None], ippo.policy_state(state))  # one seed

    def first_legal(key, obs, mask):
        return jnp.argmax(mask).astype(jnp.int32)

    same = ippo.evaluate(config, policy, 6, opponents={"first legal": first_legal})
    assert same["games_per_side"] == 6 and same["random_opening_moves"] == 0
    for side in ("side_0", "side_1"):  # a deterministic policy against a deterministic player: one game
        assert same["vs"]["first legal"][side]["games"] == 6
        assert same["vs"]["first legal"][side]["distinct_games"] == 1
    cli.print_games(same["vs"])
    assert "were one and the same game" in capsys.readouterr().out
    varied = ippo.evaluate(config, policy, 6, opponents={"first legal": first_legal}, opening=2)
    assert varied["random_opening_moves"] == 2
    for side in ("side_0", "side_1"):
        assert varied["vs"]["first legal"][side]["games"] == 6
        assert varied["vs"]["first legal"][side]["distinct_games"] > 1


# --- scripts/train.sh ----------------------------------------------------------------------------------------

def test_train_sh_runs_jaxrl_where_the_caller_stands(tmp_path):
    repo, caller = tmp_path / "repo", tmp_path / "caller"
    (repo / "scripts").mkdir(parents=True)
    (repo / ".venv" / "bin").mkdir(parents=True)
    caller.mkdir()
    shutil.copy(ROOT / "scripts" / "train.sh", repo / "scripts" / "train.sh")
    # stand-ins: setup.sh records where it ran; jaxrl prints where it runs and its arguments
    (repo / "scripts" / "setup.sh").write_text('cd "$(dirname "$0")/.."\npwd -P > setup-ran-in\n')
    jaxrl = repo / ".venv" / "bin" / "jaxrl"
    jaxrl.write_text('#!/usr/bin/env bash\necho "$(pwd -P) $*"\n')
    jaxrl.chmod(0o755)
    result = subprocess.run(["bash", str(repo / "scripts" / "train.sh"), "--out", "runs/mine"], cwd=caller,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{caller.resolve()} train --out runs/mine"
    assert (repo / "setup-ran-in").read_text().strip() == str(repo.resolve())
