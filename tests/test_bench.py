"""Benchmark suites: one compiled program per (algorithm config, env), scores normalised by the shipped
references, a full run record per group, resume of a stopped bench, one-line errors for bad suites."""

import csv
import json
import shutil
from importlib import resources

import numpy as np
import pytest
import yaml

from jaxrl import api, bench, cache, cli
from jaxrl.bench.suite import load_references, shipped_suites
from jaxrl.errors import JaxrlError

TINY = {"num_envs": 4, "num_steps": 32, "update_epochs": 1, "num_minibatches": 1, "hidden_sizes": [16],
        "updates_per_chunk": 4}
SUITE = {"name": "tiny", "seeds": 2, "entries": [
    {"algo": "ppo", "set": TINY, "envs": [{"env": "gymnax:CartPole-v1", "total_timesteps": 2048}]},
    {"algo": "ppo", "name": "ppo-wide", "set": {**TINY, "hidden_sizes": [32], "total_timesteps": 2048},
     "envs": ["gymnax:CartPole-v1"]},
]}


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    cache.enable_compilation_cache()  # the resume test compiles a group of this bench again: a cache hit
    return bench.run_bench(SUITE, out=str(tmp_path_factory.mktemp("bench") / "b"), progress=False)


def read_scores(bench_dir):
    with open(bench_dir / "scores.csv") as f:
        return list(csv.DictReader(f))


def test_one_compilation_per_group_and_scores_normalised_by_the_references(tiny_bench):
    summary = json.loads((tiny_bench.bench_dir / "summary.json").read_text())
    assert summary["groups"] == summary["compilations"] == 2
    assert summary["env_steps"] == 2 * 2 * 2048 and summary["runs"] == 4
    assert json.loads((tiny_bench.bench_dir / "metadata.json").read_text())["status"] == "finished"
    with open(tiny_bench.bench_dir / "scores.csv") as f:
        assert f.readline().strip() == "algo,env,seed,final_return,normalized_score,status,run_dir"
    rows = read_scores(tiny_bench.bench_dir)
    assert [(r["algo"], r["seed"], r["run_dir"]) for r in rows] == [
        ("ppo", "0", "runs/ppo-CartPole-v1"), ("ppo", "1", "runs/ppo-CartPole-v1"),
        ("ppo-wide", "0", "runs/ppo-wide-CartPole-v1"), ("ppo-wide", "1", "runs/ppo-wide-CartPole-v1")]
    ref = load_references()["gymnax:CartPole-v1"]
    for r in rows:
        expected = (float(r["final_return"]) - ref["random"]) / (ref["reference"] - ref["random"])
        assert float(r["normalized_score"]) == pytest.approx(expected, abs=1e-4)
        assert r["status"] == "finished"
    ppo = summary["algos"]["ppo"]
    assert ppo["tasks"] == ["gymnax:CartPole-v1"]
    for name in ("iqm", "mean", "median", "optimality_gap"):
        assert ppo[name]["low"] <= ppo[name]["point"] <= ppo[name]["high"]
    assert ppo["mean"]["point"] == pytest.approx(np.mean([float(r["normalized_score"]) for r in rows[:2]]), abs=1e-3)


def test_every_group_is_a_full_run_record_that_eval_reads(tiny_bench):
    for name in ("ppo-CartPole-v1", "ppo-wide-CartPole-v1"):
        run_dir = tiny_bench.bench_dir / "runs" / name
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["num_seeds"] == 2
        assert json.loads((run_dir / "metadata.json").read_text())["status"] == "finished"
        assert all((run_dir / f).is_file() for f in ("metrics.csv", "summary.json", "curves.png"))
        assert (run_dir / "checkpoints" / "16").is_dir()  # the final update's checkpoint
    result = api.evaluate(tiny_bench.bench_dir / "runs" / "ppo-CartPole-v1", episodes=2)
    assert result["episodes"] == 4 and np.isfinite(result["return_mean"])


def test_resume_keeps_finished_groups_and_runs_the_rest(tiny_bench, tmp_path):
    # A bench stopped after its first group: the second group's directory is gone, the status says so.
    stopped = tmp_path / "stopped"
    shutil.copytree(tiny_bench.bench_dir, stopped)
    shutil.rmtree(stopped / "runs" / "ppo-wide-CartPole-v1")
    meta = json.loads((stopped / "metadata.json").read_text())
    (stopped / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    first_metrics = (stopped / "runs" / "ppo-CartPole-v1" / "metrics.csv").read_text()

    result = api.resume(stopped, progress=False)
    assert result.summary["compilations"] == 1 and result.summary["kept_groups"] == 1
    assert (stopped / "runs" / "ppo-CartPole-v1" / "metrics.csv").read_text() == first_metrics
    assert read_scores(stopped) == read_scores(tiny_bench.bench_dir)  # the same runs, the same scores
    with pytest.raises(JaxrlError, match="has finished; nothing to resume"):
        api.resume(stopped, progress=False)


@pytest.mark.parametrize("change, message", [
    ({"entries": [{"algo": "ppx", "envs": ["gymnax:CartPole-v1"]}]}, "unknown algorithm 'ppx'.*available: ppo"),
    ({"entries": [{"algo": "sac", "envs": ["gymnax:CartPole-v1"]}]},
     "entry 1 \\(sac on gymnax:CartPole-v1\\): sac needs continuous actions"),
    ({"entries": [{"algo": "ppo", "envs": ["gymnax:NoSuchEnv-v0"]}]}, "NoSuchEnv"),
    ({"entries": [{"algo": "ppo", "set": {"lrr": 1e-3}, "envs": ["gymnax:CartPole-v1"]}]},
     "unknown config key 'lrr'.*did you mean lr"),
    ({"entries": [{"algo": "ppo", "envs": ["gymnax:CartPole-v1"], "preset": 1}]},
     "unknown key\\(s\\) 'preset'; valid keys: algo, name, set, envs"),
    ({"entries": [{"algo": "ppo", "envs": ["gymnax:CartPole-v1", "gymnax:CartPole-v1"]}]}, "listed twice"),
    ({"entries": [{"algo": "ppo", "set": {"seed": 3}, "envs": ["gymnax:CartPole-v1"]}]}, "seed is set by the suite"),
    ({"seeds": 0}, "seeds=0 must be an integer >= 1"),
    ({"entries": []}, "entries is empty"),
    ({"benchmark": 1}, "unknown key\\(s\\) 'benchmark'; valid keys: name, seeds, seed, entries"),
])
def test_a_bad_suite_is_one_error_before_compiling(change, message):
    with pytest.raises(JaxrlError, match=message):
        bench.load_suite({**SUITE, **change})


def test_the_command_names_the_shipped_suites_when_the_suite_is_unknown(capsys):
    assert cli.main(["bench", "no-such-suite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("jaxrl bench: error: suite 'no-such-suite' is neither a YAML file nor a shipped suite "
                   "(brax-small, classic, minatar, mpe)")


def test_every_env_of_a_shipped_suite_has_a_reference_with_its_source():
    references = load_references()
    for name in shipped_suites():
        suite = yaml.safe_load(resources.files("jaxrl.bench").joinpath("suites", f"{name}.yaml").read_text())
        for entry in suite["entries"]:
            for env in entry["envs"]:
                ref = references[env if isinstance(env, str) else env["env"]]
                assert ref["reference"] != ref["random"] and ref["source"]
