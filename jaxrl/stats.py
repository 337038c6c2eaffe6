"""Aggregate statistics over seeds for honest comparisons."""

from __future__ import annotations

import numpy as np


def nanmean(values, axis=None):
    """np.nanmean, but a slice with no number (no finished episode: a seed, an update) is NaN without
    a RuntimeWarning."""
    values = np.asarray(values, np.float64)
    present = ~np.isnan(values)
    count = present.sum(axis)
    return np.where(count > 0, np.where(present, values, 0.0).sum(axis) / np.maximum(count, 1), np.nan)


def bootstrap_ci(values, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of `values` (NaNs dropped).

    With one value the interval is that value; with none it is (nan, nan).
    """
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0])
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
