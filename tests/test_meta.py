"""`jaxrl meta`: evolution strategies over a learned objective, one compiled program of inner runs per generation."""

import signal

import numpy as np
import pytest

from jaxrl import api, cli, meta
from jaxrl.cache import enable_compilation_cache
from jaxrl.config import ConfigError
from jaxrl.errors import Preempted
from jaxrl.losses import load_drift

SPEC = {"name": "tiny", "env": "gymnax:CartPole-v1", "population": 4, "generations": 2, "sigma": 0.05, "lr": 0.05,
        "seed": 1, "base": {"objective": "ta_lpo", "total_timesteps": 1024, "num_envs": 4, "num_steps": 32,
                            "num_minibatches": 2, "update_epochs": 1, "hidden_sizes": [16]}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted meta run, and one stopped after its first generation then resumed (all the same program:
    compiled once, then loaded from the compilation cache as the jaxrl command does)."""
    enable_compilation_cache()
    root = tmp_path_factory.mktemp("meta")
    whole = meta.run_meta(SPEC, out=str(root / "whole"), progress=False)
    save = meta.save_generation

    def stop_after_first(out_dir, plan, es_state, generation, curve):
        save(out_dir, plan, es_state, generation, curve)
        raise Preempted("stopped by SIGTERM after generation 1", signal.SIGTERM)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(meta, "save_generation", stop_after_first)
        with pytest.raises(Preempted):
            meta.run_meta(SPEC, out=str(root / "stopped"), progress=False)
    resumed = api.resume(root / "stopped", progress=False)
    return root, whole, resumed


@pytest.mark.timeout(240)
def test_a_meta_run_writes_its_curve_drifts_and_plots(runs):
    root, whole, _ = runs
    out = root / "whole"
    for name in ("meta_curve.csv", "meta_curve.png", "drift.png", "best_drift.npz", "mean_drift.npz", "spec.yaml",
                 "summary.json", "metadata.json"):
        assert (out / name).is_file(), name
    assert [row["generation"] for row in whole.curve] == [1, 2]
    assert all(np.isfinite(row["mean"]) and row["best"] >= row["median"] >= row["worst"] for row in whole.curve)
    assert whole.summary["population"] == 4
    mean = load_drift(out / "mean_drift.npz")  # what `--set objective=PATH` reads
    assert mean["w1"].shape == (16, 128)
    assert not np.array_equal(mean["w1"], load_drift(out / "best_drift.npz")["w1"])  # the ES moved its mean


@pytest.mark.timeout(240)
def test_resume_continues_from_the_last_finished_generation_bitwise(runs):
    root, whole, resumed = runs
    assert resumed.summary["resumed_from_generation"] == 1
    assert resumed.curve == whole.curve
    for name in ("es_state.npz", "mean_drift.npz", "best_drift.npz"):
        with np.load(root / "whole" / name) as a, np.load(root / "stopped" / name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}:{key}")
    assert (root / "whole" / "meta_curve.csv").read_text() == (root / "stopped" / "meta_curve.csv").read_text()
    assert cli.main(["resume", str(root / "whole")]) == 2  # finished: nothing to resume


@pytest.mark.parametrize("changes, message", [
    ({"population": 5}, "population=5 must be even"),
    ({"population": 2}, "population=2 must be an integer >= 4"),
    ({"sigma": 0}, "sigma=0 must be a finite number > 0"),
    ({"speed": 1}, "unknown key\\(s\\) 'speed'"),
    ({"base": {"objective": "clip"}}, "evolves a learned objective.*objective to lpo or ta_lpo"),
    ({"base": {"objective": "lpo", "num_envs": 0}}, "meta spec base: num_envs=0: must be >= 1"),
    ({"base": {"objective": "lpo", "seed": 3}}, "base.seed is set by the meta loop"),
])
def test_bad_meta_specs_are_one_line_errors(changes, message):
    with pytest.raises(ConfigError, match=message) as err:
        meta.parse_spec({**SPEC, **changes})
    assert "\n" not in str(err.value)
