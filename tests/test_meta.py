"""`jaxrl meta`: evolution strategies over a learned objective, one compiled program of inner runs per generation."""

import signal

import numpy as np
import pytest

from jaxrl import api, cli, meta
from jaxrl.cache import enable_compilation_cache
from jaxrl.config import ConfigError
from jaxrl.errors import Preempted
from jaxrl.losses import load_drift

SPEC = {"name": "tiny", "env": "gymnax:CartPole-v1", "population": 4, "seeds_per_member": 2, "generations": 2,
        "sigma": 0.05, "lr": 0.05, "seed": 1, "base": {"objective": "lpo", "total_timesteps": 1024, "num_envs": 4, "num_steps": 32,
                            "num_minibatches": 1, "update_epochs": 1, "hidden_sizes": [16]}}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """A meta run never stopped (compiled once for both generations; cached, as the jaxrl command does, for the
    resume test's runs of the same program)."""
    enable_compilation_cache()
    out = tmp_path_factory.mktemp("meta") / "whole"
    return out, meta.run_meta(SPEC, out=str(out), progress=False)


@pytest.mark.timeout(240)
def test_a_meta_run_writes_its_curve_drifts_and_plots(whole):
    out, whole = whole
    for name in ("meta_curve.csv", "meta_curve.png", "drift.png", "best_drift.npz", "mean_drift.npz", "spec.yaml",
                 "summary.json", "metadata.json"):
        assert (out / name).is_file(), name
    assert [row["generation"] for row in whole.curve] == [1, 2]
    assert all(np.isfinite(row["mean"]) and row["best"] >= row["median"] >= row["worst"] for row in whole.curve)
    assert whole.summary["population"] == 4 and whole.summary["seeds_per_member"] == 2
    assert whole.summary["shared_seeds"] == "population"  # the default: common random numbers
    mean = load_drift(out / "mean_drift.npz")  # what `--set objective=PATH` reads
    assert mean["w1"].shape == (8, 128)
    assert not np.array_equal(mean["w1"], load_drift(out / "best_drift.npz")["w1"])  # the ES moved its mean


@pytest.mark.parametrize("shared_seeds", ["population", "pairs"])
def test_members_share_keys_within_a_generation_and_not_across(shared_seeds):
    plan = meta._plan(meta.parse_spec({**SPEC, "shared_seeds": shared_seeds}))
    keys = np.asarray(plan.member_keys(0)).reshape(2, 4, -1)  # [seeds_per_member, population, key]
    assert len({tuple(k) for k in keys.reshape(8, -1)}) == (2 if shared_seeds == "population" else 4)
    assert not np.array_equal(keys[0], keys[1])  # a member's runs train from different keys
    assert np.array_equal(keys[:, 0], keys[:, 2])  # an antithetic pair (i, i + P/2) always shares them
    assert np.array_equal(keys[:, 0], keys[:, 1]) == (shared_seeds == "population")
    assert not np.array_equal(np.asarray(plan.member_keys(1)), keys.reshape(8, -1))  # new keys each generation


def test_a_members_fitness_is_the_mean_over_its_runs():
    returns = np.array([[10.0, 20, 30, 40], [30, 40, 50, 60]])  # [seed, member]: run j * P + i
    episodes = np.ones((8, 10))
    episodes[7] = 0  # member 3's second run finished no episode
    metrics = {"episodes": episodes, "episode_return_sum": np.repeat(returns.reshape(8, 1), 10, 1)}
    np.testing.assert_array_equal(meta.fitness_of(metrics, 4), [20, 30, 40, np.nan])


def test_auc_fitness_is_the_mean_of_the_learning_curve_and_a_diverged_run_has_none():
    # [run, update]: run 0 returns u in update u (one episode), run 1 two episodes of 10 in every update but the
    # first (none finished there), run 2 diverged at update 5 (NaN metrics after), run 3 finished no episode
    episodes = np.array([[1.0] * 10, [0] + [2] * 9, [1] * 5 + [np.nan] * 5, [0] * 10])
    totals = np.array([np.arange(10.0), [0] + [20] * 9, [1] * 5 + [np.nan] * 5, [0] * 10])
    metrics = {"episodes": episodes, "episode_return_sum": totals}
    np.testing.assert_array_equal(meta.fitness_of(metrics, 4, "auc"), [4.5, 10, np.nan, np.nan])
    np.testing.assert_array_equal(meta.fitness_of(metrics, 4, "final"), [9, 10, np.nan, np.nan])


@pytest.mark.slow  # two more runs of the program: 5-10 s on 2 cores with its compilation cached, over the budget
@pytest.mark.timeout(300)
def test_resume_continues_from_the_last_finished_generation_bitwise(whole, tmp_path):
    whole_dir, whole = whole
    save = meta.save_generation

    def stop_after_first(out_dir, plan, es_state, generation, curve):
        save(out_dir, plan, es_state, generation, curve)
        raise Preempted("stopped by SIGTERM after generation 1", signal.SIGTERM)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(meta, "save_generation", stop_after_first)
        with pytest.raises(Preempted):
            meta.run_meta(SPEC, out=str(tmp_path / "stopped"), progress=False)
    resumed = api.resume(tmp_path / "stopped", progress=False)
    assert resumed.summary["resumed_from_generation"] == 1
    assert resumed.curve == whole.curve
    for name in ("es_state.npz", "mean_drift.npz", "best_drift.npz"):
        with np.load(whole_dir / name) as a, np.load(tmp_path / "stopped" / name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    assert (whole_dir / "meta_curve.csv").read_text() == (tmp_path / "stopped" / "meta_curve.csv").read_text()
    assert cli.main(["resume", str(whole_dir)]) == 2  # finished: nothing to resume


@pytest.mark.parametrize("changes, message", [
    ({"population": 5}, "population=5 must be even"),
    ({"population": 2}, "population=2 must be an integer >= 4"),
    ({"sigma": 0}, "sigma=0 must be a finite number > 0"),
    ({"shared_seeds": "none"}, "shared_seeds='none' must be one of population, pairs"),
    ({"seeds_per_member": 0}, "seeds_per_member=0 must be an integer >= 1"),
    ({"fitness": "best"}, "fitness='best' must be one of final, auc"),
    ({"speed": 1}, "unknown key\\(s\\) 'speed'"),
    ({"base": {"objective": "clip"}}, "evolves a learned objective.*objective to lpo or ta_lpo"),
    ({"base": {"objective": "lpo", "num_envs": 0}}, "meta spec base: num_envs=0: must be >= 1"),
    ({"base": {"objective": "lpo", "seed": 3}}, "base.seed is set by the meta loop"),
])
def test_bad_meta_specs_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as err:
        meta.parse_spec({**SPEC, **changes})
    assert "\n" not in str(err.value)
