"""Every figure jaxrl draws, one function per PNG, each written atomically.

    curves.png                   a run's learning curves (`jaxrl train`, `resume`)
    hparams.png, top_curves.png  a sweep's scores per hyperparameter, its best points' curves
    family_eval.png              a policy's return over a family of MDPs per varied parameter (`jaxrl eval --family`)
    schedules.png                a PBT run's hyperparameter schedules and returns
    ratings.png, winrate.png     a self-play run's Elo and round-robin matrix (`jaxrl eval`)
    aggregates.png, profiles.png, improvement.png, curves.png   a report's comparison (`jaxrl report`)
    meta_curve.png, drift.png    a meta run's fitness per generation, its learned drift beside PPO's (`jaxrl meta`)
matplotlib is imported inside the functions, on first use: importing it would add to the start-up
time of every `jaxrl` command, most of which draw nothing until their run is over (the session imports it on a
worker thread while the run compiles: `jaxrl.session.preload_host_modules`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jaxrl.config import format_point, format_value
from jaxrl.records import smoothed_returns
from jaxrl.stats import nanmean


def pyplot():
    """matplotlib.pyplot on the non-interactive backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure atomically and close it."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110)
    pyplot().close(fig)
    os.replace(tmp, path)
    return path


def plot_curves(run_dir: Path, metrics: dict[str, np.ndarray], steps_per_update: int, title: str) -> Path:
    """curves.png: episode return (mean over seeds, min-max band), value loss, entropy vs env steps."""
    plt = pyplot()
    x = (np.arange(metrics["episodes"].shape[1]) + 1) * steps_per_update
    returns = smoothed_returns(metrics)
    panels = [("episode return", returns)] + [(k.replace("_", " "), metrics[k]) for k in ("value_loss", "entropy")
                                               if k in metrics]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4))
    for ax, (name, y) in zip(np.atleast_1d(axes), panels):
        ax.plot(x, nanmean(y, axis=0), lw=1.5)
        if y.shape[0] > 1:  # fmin/fmax: NaN, without a warning, at updates where no seed finished an episode
            ax.fill_between(x, np.fmin.reduce(y, axis=0), np.fmax.reduce(y, axis=0), alpha=0.25)
        ax.set_xlabel("env steps")
        ax.set_title(name + (f" ({y.shape[0]} seeds)" if y.shape[0] > 1 else ""))
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, Path(run_dir) / "curves.png")


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def plot_hparams(path: Path, spec, points: list[dict], runs: list[dict]) -> Path:
    """Score of every run of a sweep (`spec`: its `jaxrl.sweep.spec.SweepSpec`) against each swept hyperparameter
    (log axes for log spaces); diverged runs as red x."""
    plt = pyplot()
    dims = spec.space
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.4), squeeze=False)
    scores = np.array([r[spec.metric] if r[spec.metric] != "" else np.nan for r in runs], np.float64)
    floor = np.nanmin(scores) if np.any(np.isfinite(scores)) else 0.0
    diverged = np.array([r["status"] == "diverged" for r in runs])
    for ax, dim in zip(axes[0], dims):
        raw = [points[r["point"]][dim.name] for r in runs]
        if _numeric(raw):
            x = np.asarray(raw, np.float64)
        else:
            labels = list(dict.fromkeys(map(format_value, dim.values or raw)))
            x = np.asarray([labels.index(format_value(v)) for v in raw], np.float64)
            ax.set_xticks(range(len(labels)), labels)
        ok = ~diverged & np.isfinite(scores)
        ax.scatter(x[ok], scores[ok], s=14, alpha=0.7, label="run")
        if diverged.any():
            ax.scatter(x[diverged], np.full(diverged.sum(), floor), marker="x", color="red", s=30, label="diverged")
        if dim.log_scale and _numeric(raw):
            ax.set_xscale("log")
        ax.set_xlabel(dim.name)
        ax.set_ylabel(spec.metric.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"sweep {spec.name}: {len(points)} points x {spec.seeds} seeds", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_family(path: Path, contexts: dict[str, np.ndarray], scores: np.ndarray, summary: dict) -> Path:
    """Mean return in each context (field -> [C] values, scores [C]) against each varied parameter, with the
    family mean and the point-MDP return as horizontal lines."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(contexts), figsize=(4.2 * len(contexts), 3.4), squeeze=False)
    for ax, (field, values) in zip(axes[0], contexts.items()):
        ax.scatter(values, scores, s=8, alpha=0.6)
        ax.axhline(summary["family_scores"]["mean"], color="C1", lw=1.2, label="family mean")
        ax.axhline(summary["point"]["return_mean"], color="C2", lw=1.2, ls="--", label="point MDP")
        ax.set_xlabel(field)
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{summary['env']}: {summary['family']} ({len(scores)} contexts)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_top_curves(path: Path, spec, points: list[dict], ranking: list[dict],
                    curves: dict[str, np.ndarray], k: int = 5) -> Path:
    """Learning curves (mean over seeds, min-max band) of the top-k points of a sweep (`spec`: its
    `jaxrl.sweep.spec.SweepSpec`)."""
    plt = pyplot()
    where = {}  # run id -> (group, row)
    for key in curves:
        if key.endswith("_runs"):
            g = key[: -len("_runs")]
            for row, run in enumerate(curves[key]):
                where[int(run)] = (g, row)
    fig, ax = plt.subplots(figsize=(7, 4))
    top = [row for row in ranking if row["score"] != ""][:k]
    for row in top:
        p = row["point"]
        found = [where[p * spec.seeds + s] for s in range(spec.seeds) if p * spec.seeds + s in where]
        g = found[0][0]
        x = curves[f"{g}_env_steps"]
        ys = np.stack([curves[f"{g}_returns"][r] for _, r in found])
        ys = smoothed_returns({"episodes": np.isfinite(ys).astype(np.float32), "episode_return_sum": np.nan_to_num(ys)})
        mean = nanmean(ys, axis=0)
        line, = ax.plot(x, mean, lw=1.5, label=f"#{row['rank']}: {format_point(points[p])}")
        if ys.shape[0] > 1:  # fmin/fmax: NaN, without a warning, at updates where no seed finished an episode
            ax.fill_between(x, np.fmin.reduce(ys, axis=0), np.fmax.reduce(ys, axis=0), alpha=0.15,
                            color=line.get_color())
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"top {len(top)} points of sweep {spec.name} ({spec.seeds} seeds each)", fontsize=10)
    ax.grid(alpha=0.3)
    if top:  # no point scored (no run finished an episode): nothing to label
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_schedules(path: Path, spec, schedule: list[dict], metrics: dict, steps_per_update: int) -> Path:
    """Each PBT member's explored hyperparameters over training (one panel each) and the population's
    returns (`spec`: the run's `pbt.PBTSpec`)."""
    plt = pyplot()
    dims = spec.sweep.space
    R, P = spec.sweep.seeds, spec.settings.population
    fig, axes = plt.subplots(1, len(dims) + 1, figsize=(4.5 * (len(dims) + 1), 3.6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, dim in zip(axes[0], dims):
        for r in range(R):
            for m in range(P):
                rows = [row for row in schedule if row["population"] == r and row["member"] == m]
                x = [row["env_steps"] for row in rows] + [metrics["episodes"].shape[1] * steps_per_update]
                y = [row[dim.name] for row in rows]
                ax.step(x, y + y[-1:], where="post", lw=0.8, alpha=0.6,
                        color=cmap(m / max(P - 1, 1)), linestyle="-" if r == 0 else "--")
        if dim.log_scale:
            ax.set_yscale("log")
        ax.set_xlabel("env steps")
        ax.set_title(f"{dim.name} of each member", fontsize=10)
        ax.grid(alpha=0.3)
    ax = axes[0][-1]
    x = (np.arange(metrics["episodes"].shape[1]) + 1) * steps_per_update
    returns = smoothed_returns(metrics)
    for i in range(R * P):
        ax.plot(x, returns[i], lw=0.6, alpha=0.5, color=cmap((i % P) / max(P - 1, 1)))
    ax.set_xlabel("env steps")
    ax.set_title("episode return of each member", fontsize=10)
    ax.grid(alpha=0.3)
    fig.suptitle(f"PBT {spec.sweep.name}: {R} population(s) x {P}, ready every {spec.settings.ready} updates "
                 f"(solid: population 0)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ratings(path: Path, steps: np.ndarray, ratings: np.ndarray, anchors: dict[str, float], title: str,
                 direct: dict[str, np.ndarray]):
    """Elo of the snapshots (left) beside their direct score against each scripted player (right).

    Elo fits one number per player to the whole table, so snapshots that only beat each other
    can out-rate a scripted player they lose to; the direct scores show that.
    """
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax.plot(steps, ratings, "o-", label="policy snapshots")
    for (name, value), style in zip(anchors.items(), ("--", ":", "-.")):
        ax.axhline(value, linestyle=style, color="grey", label=name)
    ax.set_xlabel("env steps")
    ax.set_ylabel("Elo (random player = 0)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    for name, rate in direct.items():
        bx.plot(steps, rate, "o-", label=f"vs {name}")
    bx.axhline(0.5, color="grey", linewidth=0.8)
    bx.set_ylim(-0.02, 1.02)
    bx.set_xlabel("env steps")
    bx.set_ylabel("score (win 1, draw 1/2), both seats")
    bx.set_title("snapshots against the scripted players")
    bx.grid(alpha=0.3)
    bx.legend()
    save_figure(fig, path)


def plot_matrix(path: Path, names: list[str], rate: np.ndarray, title: str):
    """Round-robin score of each player (row) against each other (column)."""
    plt = pyplot()
    size = max(5.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rate, vmin=0, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("opponent")
    ax.set_ylabel("player")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="score of row vs column (win 1, draw 1/2)")
    save_figure(fig, path)


def _label_colors(labels) -> dict:
    """One colour per label, the same in every figure of a report."""
    cycle = pyplot().rcParams["axes.prop_cycle"].by_key()["color"]
    return {label: cycle[i % len(cycle)] for i, label in enumerate(labels)}


def plot_aggregates(path: Path, aggregates: dict, score_kind: str) -> Path:
    """Aggregate metrics of each label (`aggregates`: {label: {metric: stats.Estimate}}): the point and its
    95% interval, one panel per metric (as rliable's plot_interval_estimates)."""
    plt = pyplot()
    labels = list(aggregates)
    metrics = list(aggregates[labels[0]])
    colors = _label_colors(labels)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 1.5, 0.45 * len(labels) + 1.4),
                             squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics):
        for row, label in enumerate(labels):
            est = aggregates[label][metric]
            ax.barh(row, est.high - est.low, left=est.low, height=0.6, color=colors[label], alpha=0.75)
            ax.plot([est.point, est.point], [row - 0.3, row + 0.3], color="black", lw=1.5)
        ax.set_title(metric.replace("_", " ").replace("iqm", "IQM"), fontsize=10)
        ax.set_xlabel(score_kind, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_profiles(path: Path, taus: np.ndarray, profiles: dict, score_kind: str) -> Path:
    """Performance profiles ({label: stats.Estimate of [len(taus)]}): the fraction of runs scoring above
    tau, with its 95% CI band."""
    plt = pyplot()
    colors = _label_colors(profiles)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for label, est in profiles.items():
        ax.plot(taus, est.point, color=colors[label], lw=1.6, label=label)
        ax.fill_between(taus, est.low, est.high, color=colors[label], alpha=0.2)
    ax.set_xlabel(f"{score_kind} (tau)")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_improvement(path: Path, improvement: dict) -> Path:
    """P(X > Y) with its 95% interval for each pair of labels ({(x, y): stats.Estimate})."""
    plt = pyplot()
    pairs = list(improvement)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(pairs) + 1.3))
    for row, pair in enumerate(pairs):
        est = improvement[pair]
        ax.barh(row, est.high - est.low, left=est.low, height=0.6, color="tab:blue", alpha=0.6)
        ax.plot([est.point, est.point], [row - 0.3, row + 0.3], color="black", lw=1.5)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_yticks(range(len(pairs)), [f"P({x} > {y})" for x, y in pairs], fontsize=8)
    ax.set_ylim(len(pairs) - 0.5, -0.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("probability of improvement")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_sample_efficiency(path: Path, curves: dict, labels: list[str], ylabels: dict) -> Path:
    """Return against env steps, one panel per env ({env: {label: (steps [T], stats.Estimate of [T])}}):
    the IQM over runs and its 95% CI band. `labels`: all of the report's, in the order that gives each
    the colour it has in the other figures."""
    plt = pyplot()
    envs = list(curves)
    colors = _label_colors(labels)
    columns = min(3, len(envs))
    rows = -(-len(envs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False)
    for ax, env in zip(axes.ravel(), envs):
        for label, (steps, est) in curves[env].items():
            ax.plot(steps, est.point, color=colors[label], lw=1.5, label=label)
            ax.fill_between(steps, est.low, est.high, color=colors[label], alpha=0.2)
        ax.set_title(env, fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylabel(f"{ylabels[env]} (IQM over runs)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(envs):]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_meta_curve(path: Path, curve: list[dict], name: str, fitness: str = "final return") -> Path:
    """meta_curve.png: the population's fitness (`fitness` says which return of its inner runs) per generation."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    x = [row["generation"] for row in curve]
    for key, style in (("best", "-"), ("median", "--"), ("mean", "-")):
        ax.plot(x, [row[key] for row in curve], style, lw=1.5 if key == "mean" else 1.0, label=key)
    ax.fill_between(x, [row["worst"] for row in curve], [row["best"] for row in curve], alpha=0.15)
    ax.set_xlabel("generation")
    ax.set_ylabel(f"fitness ({fitness})")
    ax.set_title(f"{name}: fitness of the population", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, Path(path))


def plot_drift(path: Path, drifts: dict, clip_eps: float, title: str) -> Path:
    """drift.png: PPO's drift and each learned drift (name -> phi) over r in [0.5, 1.5], A in [-3, 3], one
    colour scale; a TA-LPO drift at the start, middle and end of training (n/N = 0, 0.5, 1)."""
    import jax

    from jaxrl.losses import drift_objective, learned_drift, ppo_drift

    plt = pyplot()
    r, adv = np.meshgrid(np.linspace(0.5, 1.5, 201, dtype=np.float32), np.linspace(-3.0, 3.0, 201, dtype=np.float32))
    drift = jax.jit(learned_drift)  # one compilation per kind of drift, not one per operation
    panels = [("PPO (clip)", np.asarray(jax.jit(ppo_drift)(r, adv, clip_eps)))]
    for name, phi in drifts.items():
        times = (0.0, 0.5, 1.0) if drift_objective(phi) == "ta_lpo" else (None,)
        for t in times:
            panels.append((name + ("" if t is None else f", n/N={t:g}"), np.asarray(drift(phi, np.log(r), adv,
                                                                                          clip_eps, t))))
    top = max(float(np.nanmax(p)) for _, p in panels) or 1.0
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols + 1.0, 3.0 * rows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for i, (ax, (name, value)) in enumerate(zip(axes.flat, panels)):
        image = ax.pcolormesh(r, adv, value, vmin=0.0, vmax=top, cmap="viridis", shading="auto")
        ax.contour(r, adv, value, levels=[1e-3], colors="white", linewidths=0.6)  # where the drift starts
        ax.axvline(1.0, color="white", lw=0.5, ls=":")
        ax.set_title(name, fontsize=9)
        if i >= len(panels) - cols:
            ax.set_xlabel("ratio r")
        if i % cols == 0:
            ax.set_ylabel("advantage A")
    fig.colorbar(image, ax=axes, shrink=0.8, label="drift D(r, A)")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, Path(path))
