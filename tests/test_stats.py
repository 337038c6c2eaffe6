"""Aggregate statistics (jaxrl.stats): hand-checked cases, reproducible bootstrap intervals, and equality
with the rliable package (skipped when it is not installed)."""

import numpy as np
import pytest

from jaxrl import stats
from jaxrl.errors import JaxrlError

pytestmark = pytest.mark.timeout(60)


def fixed_scores():
    """Three fixed score dicts [runs, tasks]: ties and clipping included, different run counts."""
    rng = np.random.default_rng(7)
    return [
        {"a": np.arange(12.0).reshape(4, 3) / 10.0, "b": np.array([[0.1, 0.5, 1.2], [0.3, 0.5, 0.9]])},
        {"a": rng.normal(0.8, 0.4, (5, 4)), "b": rng.normal(0.6, 0.5, (7, 4))},
        {"a": np.round(rng.uniform(0.0, 1.5, (10, 6)), 1), "b": np.round(rng.uniform(0.0, 1.5, (3, 6)), 1)},
    ]


def test_point_estimates_by_hand():
    scores = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])  # 8 scores: IQM drops 2 at each end
    assert stats.iqm(scores) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    # 9 scores: int(9 / 4) = 2 dropped at each end of -50 1 | 2 3 4 7 8 | 9 100
    assert stats.iqm(np.array([[1.0, 9.0, 2.0], [8.0, 3.0, 100.0], [4.0, 7.0, -50.0]])) == pytest.approx(4.8)
    assert stats.mean(scores) == pytest.approx(3.5)
    assert stats.median(np.array([[0.0, 2.0, 10.0], [1.0, 4.0, 20.0]])) == pytest.approx(3.0)  # task means .5, 3, 15
    assert stats.optimality_gap(np.array([[0.5, 1.5], [0.0, 1.0]])) == pytest.approx((0.5 + 0 + 1.0 + 0) / 4)
    assert stats.optimality_gap(np.array([[0.5, 1.5]]), gamma=2.0) == pytest.approx((1.5 + 0.5) / 2)
    # a batch of matrices gives one value each
    np.testing.assert_allclose(stats.iqm(np.stack([scores, scores + 1])), [3.5, 4.5])


def test_probability_of_improvement_by_hand():
    better = {"x": np.array([[2.0, 5.0], [3.0, 6.0]]), "y": np.array([[0.0, 1.0], [1.0, 2.0], [0.5, 4.0]])}
    assert stats.probability_of_improvement(better, "x", "y").point == 1.0
    assert stats.probability_of_improvement(better, "y", "x").point == 0.0
    assert stats.probability_of_improvement(better, "x", "x").point == 0.5
    # task 0: x = [1, 2] vs y = [2]: 0 + 1/2 of 2 pairs -> 0.25; task 1: 3 > 2 and 3 > 2 -> 1
    ties = {"x": np.array([[1.0, 3.0], [2.0, 3.0]]), "y": np.array([[2.0, 2.0]])}
    assert stats.probability_of_improvement(ties, "x", "y").point == pytest.approx((0.25 + 1.0) / 2)


def test_normalize():
    normalised = stats.normalize([[10.0, -100.0], [30.0, 0.0]], random=[10.0, -200.0], reference=[30.0, 0.0])
    np.testing.assert_allclose(normalised, [[0.0, 0.5], [1.0, 1.0]])
    with pytest.raises(JaxrlError, match="task 1"):
        stats.normalize([[1.0, 2.0]], random=[0.0, 5.0], reference=[1.0, 5.0])
    with pytest.raises(JaxrlError, match="reference scores have shape"):
        stats.normalize([[1.0, 2.0]], random=[0.0, 0.0], reference=[1.0])


def test_intervals_are_reproducible_and_bracket_the_point():
    scores = fixed_scores()[1]
    first = stats.interval_estimates(scores, reps=500, seed=3)
    assert first == stats.interval_estimates(scores, reps=500, seed=3)
    assert first != stats.interval_estimates(scores, reps=500, seed=4)
    for per_metric in first.values():
        for estimate in per_metric.values():
            assert estimate.low <= estimate.point <= estimate.high and estimate.low < estimate.high
    wide = stats.interval_estimates(scores, stats.iqm, reps=500, seed=3, confidence=0.99)["a"]
    assert wide.low <= first["a"]["iqm"].low and first["a"]["iqm"].high <= wide.high
    improvement = stats.probability_of_improvement(scores, "a", "b", reps=500, seed=3)
    assert improvement == stats.probability_of_improvement(scores, "a", "b", reps=500, seed=3)
    assert improvement.low <= improvement.point <= improvement.high
    profile = stats.performance_profile(scores, np.linspace(0.0, 1.5, 7), reps=500)["a"]
    assert np.all(np.diff(profile.point) <= 0) and np.all(profile.low <= profile.point)
    assert np.all(profile.point <= profile.high)


def test_errors_name_the_algorithm_and_task():
    with pytest.raises(JaxrlError, match=r"different numbers of tasks \{'a': 3, 'b': 2\}"):
        stats.interval_estimates({"a": np.zeros((3, 3)), "b": np.zeros((3, 2))})
    with pytest.raises(JaxrlError, match=r"'a' have shape \(0, 3\)"):
        stats.interval_estimates({"a": np.zeros((0, 3))})
    bad = np.zeros((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(JaxrlError, match=r"'b' have nan at run 1, task 2"):
        stats.performance_profile({"a": np.zeros((3, 4)), "b": bad}, [0.5])
    with pytest.raises(JaxrlError, match="no scores for 'c'"):
        stats.probability_of_improvement({"a": np.zeros((3, 4))}, "a", "c")
    with pytest.raises(JaxrlError, match="confidence"):
        stats.interval_estimates({"a": np.zeros((3, 4))}, confidence=95)
    with pytest.raises(JaxrlError, match="reps"):
        stats.interval_estimates({"a": np.zeros((3, 4))}, reps=0)


def replay_draws(monkeypatch, seed, reps):
    """Make rliable's np.random.choice(runs, shape) hand out the resampling indices jaxrl.stats draws with
    `seed`: one block rng.integers(0, runs, (reps, *shape)) per sample, taken a replicate at a time."""
    rng = np.random.default_rng(seed)
    blocks = {}

    def choice(runs, shape, replace=True):
        queue = blocks.get(shape)
        if not queue:
            queue = blocks[shape] = list(rng.integers(0, runs, (reps, *shape)))
        return queue.pop(0)

    monkeypatch.setattr(np.random, "choice", choice)


def test_equal_to_rliable(monkeypatch):
    pytest.importorskip("rliable")
    from rliable import library, metrics

    rliable_metrics = {"mean": metrics.aggregate_mean, "median": metrics.aggregate_median,
                       "iqm": metrics.aggregate_iqm, "optimality_gap": metrics.aggregate_optimality_gap}
    taus = np.linspace(-0.5, 2.0, 11)
    for scores in fixed_scores():
        for algo, values in scores.items():
            for name, function in rliable_metrics.items():
                assert stats.AGGREGATES[name](values) == pytest.approx(function(values), abs=1e-6), (algo, name)
            for task_means in (False, True):
                reference = (library.average_score_distributions if task_means else library.score_distributions)
                ours = stats.performance_profile({algo: values}, taus, task_means=task_means, reps=1)[algo].point
                np.testing.assert_allclose(ours, reference(values, taus), atol=1e-6)
        assert stats.probability_of_improvement(scores, "a", "b", reps=1).point == pytest.approx(
            metrics.probability_of_improvement(scores["a"], scores["b"]), abs=1e-6)

        # Intervals: the same resampling indices give the same percentile intervals.
        reps = 100
        replay_draws(monkeypatch, seed=11, reps=reps)
        points, intervals = library.get_interval_estimates(
            scores, lambda x: np.array([f(x) for f in rliable_metrics.values()]), reps=reps)
        ours = stats.interval_estimates(scores, reps=reps, seed=11)
        for algo in scores:
            for i, name in enumerate(rliable_metrics):
                estimate = ours[algo][name]
                assert estimate.point == pytest.approx(points[algo][i], abs=1e-6)
                np.testing.assert_allclose([estimate.low, estimate.high], intervals[algo][:, i], atol=1e-9)
        replay_draws(monkeypatch, seed=5, reps=reps)
        _, intervals = library.get_interval_estimates(
            {"a,b": (scores["a"], scores["b"])}, metrics.probability_of_improvement, reps=reps)
        ours = stats.probability_of_improvement(scores, "a", "b", reps=reps, seed=5)
        np.testing.assert_allclose([ours.low, ours.high], intervals["a,b"][:, 0], atol=1e-9)
        replay_draws(monkeypatch, seed=2, reps=reps)
        _, bands = library.create_performance_profile(scores, taus, reps=reps)
        ours = stats.performance_profile(scores, taus, reps=reps, seed=2)
        for algo in scores:
            np.testing.assert_allclose(np.stack([ours[algo].low, ours[algo].high]), bands[algo], atol=1e-9)
