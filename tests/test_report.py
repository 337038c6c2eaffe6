"""`jaxrl report`: run, sweep and bench directories compared with jaxrl.stats' aggregates, plots and the
provenance every record keeps."""

import json
import re

import numpy as np
import pytest
import yaml

from jaxrl import records, stats
from jaxrl.cli import main
from jaxrl.errors import JaxrlError
from jaxrl.report import load_source, write_report

REFERENCES = {"gymnax:CartPole-v1": {"random": 20.0, "reference": 500.0, "source": "test"},
              "gymnax:Acrobot-v1": {"random": -500.0, "reference": -100.0, "source": "test"}}
ROWS = 20  # metrics.csv rows per seed: the final return (last 5% of rows) is the last row's


def synthetic_run(path, algo, env, finals, commit, packages_hash="hash-a", dirty=False):
    """A run directory whose seeds end with the returns `finals` (rising to them along the way)."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"algo": algo, "env": env}))
    (path / "metadata.json").write_text(json.dumps({"git_commit": commit, "git_dirty": dirty,
                                                    "packages_hash": packages_hash, "status": "finished"}))
    rows = [{"seed": seed, "update": u, "env_steps": 100 * u, "episodes": 2,
             "episode_return": final * u / ROWS} for u in range(1, ROWS + 1) for seed, final in enumerate(finals)]
    records.write_csv(path / "metrics.csv", rows)
    return path


# Known final returns: label a (commit aaaa...) beats label b (commit bbbb...) on both envs.
FINALS = {"a": {"gymnax:CartPole-v1": [500.0, 420.0, 260.0, 500.0], "gymnax:Acrobot-v1": [-100.0, -140.0, -90.0, -300.0]},
          "b": {"gymnax:CartPole-v1": [140.0, 20.0, 260.0, 80.0], "gymnax:Acrobot-v1": [-400.0, -180.0, -500.0, -260.0]}}


@pytest.fixture(scope="module")
def two_labels(tmp_path_factory):
    """Two labels (the same algorithm at two commits) on two envs, one run directory per (label, env)."""
    root = tmp_path_factory.mktemp("inputs")
    dirs = []
    for label, by_env in FINALS.items():
        for env, finals in by_env.items():
            dirs.append(synthetic_run(root / f"{label}-{env.split(':')[1]}", "ppo", env, finals, label * 40,
                                      packages_hash=f"hash-{label}", dirty=label == "b"))
    out = root / "report"
    return dirs, out, write_report(dirs, out, reps=500, seed=3, references=REFERENCES)


def test_report_numbers_are_jaxrl_stats_on_the_normalised_scores(two_labels):
    _, out, result = two_labels
    envs = list(FINALS["a"])
    expected = {}
    for label, by_env in FINALS.items():
        raw = np.array([by_env[env] for env in envs]).T  # [runs, tasks]
        expected[f"ppo@{label * 7}" + ("+dirty" if label == "b" else "")] = stats.normalize(
            raw, [REFERENCES[e]["random"] for e in envs], [REFERENCES[e]["reference"] for e in envs])
    assert result.score_kind == "normalised score" and result.tasks == {label: envs for label in expected}
    assert list(result.scores) == list(expected)
    for label in expected:
        np.testing.assert_allclose(result.scores[label], expected[label])
    estimates = {label: stats.interval_estimates({label: m}, stats.AGGREGATES, reps=500, seed=3)[label]
                 for label, m in expected.items()}
    text = (out / "report.md").read_text()
    for label, metrics in estimates.items():
        cells = " | ".join(f"{m.point:.3f} [{m.low:.3f}, {m.high:.3f}]" for m in
                           (metrics["iqm"], metrics["mean"], metrics["median"], metrics["optimality_gap"]))
        assert f"| {label} | 4 x 2 | {cells} |" in text
    a, b = expected
    poi = stats.probability_of_improvement(expected, a, b, reps=500, seed=3)
    assert f"| {a} | {b} | {poi.point:.3f} [{poi.low:.3f}, {poi.high:.3f}] |" in text
    assert poi.point > 0.5
    # Per-env raw means, provenance and its warnings.
    assert f"| gymnax:CartPole-v1 | {np.mean(FINALS['a']['gymnax:CartPole-v1']):.1f} [" in text
    assert "different installed packages (packages_hash): hash-a:" in text
    assert re.search(r"uncommitted changes .*: \S*b-CartPole", text)
    assert "| env | gymnax:CartPole-v1 | gymnax:Acrobot-v1 | gymnax:CartPole-v1 | gymnax:Acrobot-v1 |" in text
    for png in ("aggregates", "profiles", "improvement", "curves"):
        assert f"]({png}.png)" in text
        data = (out / f"{png}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, png


def test_labels_on_different_envs_aggregate_over_their_own_and_compare_over_the_shared(tmp_path):
    """A bench's algorithms run different envs (sac only on continuous actions): each label is aggregated
    over its envs, P(X > Y) over the envs both ran."""
    a_dirs = [synthetic_run(tmp_path / f"a-{env.split(':')[1]}", "ppo", env, finals, "a" * 40)
              for env, finals in FINALS["a"].items()]
    b_dir = synthetic_run(tmp_path / "b-CartPole", "dqn", "gymnax:CartPole-v1", FINALS["b"]["gymnax:CartPole-v1"],
                          "a" * 40)
    result = write_report([*a_dirs, b_dir], tmp_path / "report", labels=["a", "a", "b"], reps=300,
                          references=REFERENCES)
    assert result.tasks == {"a": list(FINALS["a"]), "b": ["gymnax:CartPole-v1"]}
    assert result.scores["a"].shape == (4, 2) and result.scores["b"].shape == (4, 1)
    shared = {label: result.scores[label][:, :1] for label in ("a", "b")}
    assert result.improvement[("a", "b")] == stats.probability_of_improvement(shared, "a", "b", reps=300)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "each label over its own envs" in text and "| b | 4 x 1 |" in text
    assert any("ran different envs" in w for w in result.warnings)


def test_labels_raw_returns_and_a_second_report_into_the_same_directory(two_labels):
    dirs, out, _ = two_labels
    result = write_report(dirs[:1] + dirs[2:3], out.with_name("raw"), ["new", "old"], reps=50, references={})
    assert list(result.scores) == ["new", "old"] and result.score_kind == "raw return"
    assert "optimality_gap" not in result.aggregates["new"]
    assert any("no normalisation reference for gymnax:CartPole-v1" in w for w in result.warnings)
    with pytest.raises(JaxrlError, match="already exists and is not empty"):
        write_report(dirs, out, reps=50)


def test_cli_report_prints_each_labels_iqm_and_the_report_path(two_labels, tmp_path, capsys):
    dirs, _, _ = two_labels
    out = tmp_path / "cli"
    assert main(["report", *map(str, dirs[:2]), "--out", str(out), "--labels", "mine,mine", "--reps", "50"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^mine: IQM .* \(4 x 2 runs x envs\)$", printed, re.M)
    assert printed.endswith(f"report: {out / 'report.md'}\n") and (out / "report.md").is_file()
    assert main(["report", str(dirs[0]), "--labels", "a,b"]) == 2
    assert "--labels gives 2 label(s) for 1 director(ies)" in capsys.readouterr().err


def test_a_sweep_directory_reports_its_best_point(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "spec.yaml").write_text(yaml.safe_dump({"algo": "ppo", "env": "gymnax:CartPole-v1", "method": "grid",
                                                     "seeds": 2, "space": {"lr": [0.001, 0.01]}}))
    (sweep / "points.yaml").write_text(yaml.safe_dump([{"lr": 0.001}, {"lr": 0.01}]))
    (sweep / "metadata.json").write_text(json.dumps({"git_commit": "c" * 40, "status": "finished"}))
    finals = [10.0, 12.0, 300.0, 200.0]  # runs 0, 1: point 0; runs 2, 3: point 1, the best
    records.write_csv(sweep / "runs.csv", [{"run": r, "point": r // 2, "seed": r % 2, "group": 0, "lr": 0.0,
                                            "final_return": f, "auc": 0.0, "status": "finished", "diverged_at": ""}
                                           for r, f in enumerate(finals)])
    records.write_csv(sweep / "ranking.csv", [{"rank": 1, "point": 1, "score": 250.0}, {"rank": 2, "point": 0}])
    curves = np.linspace(0, 1, 10)[None] * np.array(finals)[:, None]
    records.save_arrays(sweep / "curves.npz", {"group0_env_steps": np.arange(1, 11) * 512,
                                               "group0_runs": np.arange(4), "group0_returns": curves})
    source = load_source(sweep)
    (runs,) = source.runs
    assert source.kind == "sweep" and source.note == "best point 1 of 2"
    assert runs.algo == "ppo" and runs.env == "gymnax:CartPole-v1"
    np.testing.assert_array_equal(runs.finals, [300.0, 200.0])
    assert len(runs.curves) == 2 and runs.curves[0][1][-1] > runs.curves[1][1][-1]


def test_a_new_record_keeps_its_provenance(tmp_path):
    """Every record (run, sweep, bench) starts from records.base_metadata: git commit and dirty flag, every
    installed package in packages.txt and their hash, device, command."""
    records.Record(tmp_path)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    packages = (tmp_path / "packages.txt").read_text()
    assert re.search(r"^jax==\S+$", packages, re.M) and re.search(r"^numpy==\S+$", packages, re.M)
    from importlib import metadata  # the list is read from the metadata files' heads: the same as parsing them
    assert packages.splitlines() == sorted({f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                                            if d.metadata["Name"]}, key=str.lower)
    assert meta["packages_hash"] == records.packages_hash(packages)
    assert "git_dirty" in meta and meta["git_dirty"] in (True, False, None)
    assert meta["git_commit"] and meta["command"] and meta["device_kind"]
    resumed = records.Record.reopen(tmp_path).meta["resumes"][-1]  # a resume notes the code it runs
    assert resumed["packages_hash"] == meta["packages_hash"] and resumed["git_dirty"] == meta["git_dirty"]


def test_a_run_resumed_with_other_packages_is_flagged(tmp_path):
    run = synthetic_run(tmp_path / "run", "ppo", "gymnax:CartPole-v1", [100.0, 200.0], "a" * 40)
    meta = json.loads((run / "metadata.json").read_text())
    (run / "metadata.json").write_text(json.dumps({**meta, "resumes": [{"git_commit": "a" * 40,
                                                                        "packages_hash": "other"}]}))
    result = write_report([run], tmp_path / "report", reps=20, references={})
    assert any(w.startswith(f"{run} was resumed with another packages_hash than it started with") for w in result.warnings)


@pytest.mark.slow
def test_a_trained_run_directory_scores_as_its_summary(tmp_path):
    out = tmp_path / "ppo"
    assert main(["train", "--out", str(out), "--no-progress", "--seeds", "2", "--total-timesteps", "2560",
                 "--set", "num_envs=4", "--set", "num_steps=32", "--eval-episodes", "0"]) == 0
    assert json.loads((out / "metadata.json").read_text())["packages_hash"]
    source = load_source(out)
    (runs,) = source.runs
    summary = json.loads((out / "summary.json").read_text())
    assert source.kind == "run" and (runs.algo, runs.env) == ("ppo", "gymnax:CartPole-v1")
    np.testing.assert_allclose(runs.finals, summary["final_return_per_seed"], atol=1e-3)
    assert len(runs.curves) == 2


def test_a_run_directory_loads(two_labels):
    source = load_source(two_labels[0][0])
    (runs,) = source.runs
    assert source.kind == "run" and (runs.algo, runs.env) == ("ppo", "gymnax:CartPole-v1")
    np.testing.assert_allclose(runs.finals, FINALS["a"]["gymnax:CartPole-v1"])
    steps, curve = runs.curves[0]
    assert steps[-1] == 100 * ROWS and np.all(np.diff(curve[np.isfinite(curve)]) >= 0)


def test_a_bench_directory_gives_one_label_per_algorithm(tmp_path):
    """Bench layout: suite.yaml, metadata.json, scores.csv (run_dir relative to it), each run a run record;
    a record may hold several seeds of a group."""
    bench = tmp_path / "bench"
    finals = {"ppo": [450.0, 500.0], "dqn": [30.0, 40.0]}
    for algo, values in finals.items():
        synthetic_run(bench / "runs" / algo, algo, "gymnax:CartPole-v1", values, "d" * 40)
    (bench / "suite.yaml").write_text("name: test\n")
    (bench / "metadata.json").write_text(json.dumps({"git_commit": "e" * 40, "packages_hash": "h"}))
    records.write_csv(bench / "scores.csv", [
        {"algo": algo, "env": "gymnax:CartPole-v1", "seed": seed, "final_return": finals[algo][seed],
         "normalized_score": (finals[algo][seed] - 20) / 480, "status": "finished", "run_dir": f"runs/{algo}"}
        for algo in finals for seed in range(2)])
    result = write_report([bench], tmp_path / "report", ["new"], reps=100, references={})
    assert list(result.scores) == ["new/ppo", "new/dqn"]
    assert result.score_kind == "normalised score"  # scores.csv's normalized_score
    np.testing.assert_allclose(result.scores["new/dqn"][:, 0], [10 / 480, 20 / 480])
    assert load_source(bench).labels == {} and len(load_source(bench).runs[0].curves) == 2
    assert (tmp_path / "report" / "curves.png").stat().st_size > 10_000


def damaged_run(path):
    run = synthetic_run(path / "run", "ppo", "gymnax:CartPole-v1", [1.0], "a" * 40)
    (run / "metrics.csv").write_text((run / "metrics.csv").read_text().replace(",2,", ",two,", 1))
    return run


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing", "is not a directory"),
    (lambda p: p, "is not a run directory (config.yaml, metrics.csv), a sweep directory"),
    (damaged_run, "has a damaged file (ValueError: could not convert string to float: 'two')"),
])
def test_a_bad_directory_is_a_one_line_error(tmp_path, capsys, make, message):
    assert main(["report", str(make(tmp_path)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxrl report: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
