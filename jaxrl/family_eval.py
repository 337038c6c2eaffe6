"""Evaluation over a family of MDPs (`jaxrl eval RUN... --family SPEC`): a trained policy scored on contexts
drawn from a distribution over the env's parameters (jaxrl.envs.family), beside its score on the point MDP
(the default parameters), as "The Impact of Task Underspecification in Evaluating Deep RL" (Jayawardana et
al. 2022) asks. For several runs, how stable their ranking is between the two; and the k-means shortcut
(evaluate only cluster centroids, weighted by cluster mass).

Files written to each run directory, nothing else touched there:
    family_eval.json       the summary (returned by `evaluate_family`)
    family_contexts.csv    one row per context: its parameters and the policy's mean return there
    family_eval.png        return against each varied parameter
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from jaxrl import checkpoint, records
from jaxrl.errors import JaxrlError
from jaxrl.session import load_run_config

DEFAULT_CONTEXTS = 256
DEFAULT_EPISODES = 8
BOOTSTRAP_REPS = 2000


def evaluate_family(run_dirs: list[str | Path] | str | Path, family: str, contexts: int = DEFAULT_CONTEXTS,
                    episodes: int = DEFAULT_EPISODES, seed: int = 0, kmeans: int = 0, step: int | None = None,
                    write: bool = True) -> dict:
    """Score each run's deterministic policy on `contexts` contexts of `family` (drawn with `seed`, the same for
    every run), `episodes` episodes per context and seed, all contexts in one compiled program per run, and on
    the point MDP. `kmeans` > 0 adds the estimate from that many centroids. Writes the files of the module
    docstring to each run unless not `write`. Returns {"runs": [summary per run], "ranking": ... (2+ runs)}."""
    import jax

    from jaxrl import envs
    from jaxrl.envs.family import parse_family

    run_dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    if contexts < 1 or episodes < 1:
        raise JaxrlError(f"--contexts {contexts} --episodes {episodes}: both must be >= 1")
    if not 0 <= kmeans <= contexts:
        raise JaxrlError(f"--kmeans {kmeans}: must be between 0 (off) and --contexts ({contexts})")
    configs = [load_run_config(d) for d in run_dirs]
    env_ids = {c.env for c in configs}
    if len(env_ids) > 1:
        raise JaxrlError(f"runs compared over a family must share their env; these play {', '.join(sorted(env_ids))}")
    for run_dir, config in zip(run_dirs, configs):
        if getattr(config, "selfplay", "off") != "off":
            raise JaxrlError(f"run {str(run_dir)!r} was trained by self-play; --family evaluates single-policy runs")
    env = envs.make(configs[0].env)
    fam = parse_family(family, env)
    sampled = {k: np.asarray(v) for k, v in fam.sample_many(jax.random.PRNGKey(seed), contexts).items()}
    clusters = kmeans_contexts(fam, sampled, kmeans, seed) if kmeans else None
    default = {d.field: np.asarray(d.cast(d.default)) for d in fam.dims}
    # One batch per run: the sampled contexts, then the centroids, then the default parameters: the point MDP is
    # scored by the very program and keys that score the contexts, so the two differ only by the MDP.
    batch = {k: np.concatenate([v, clusters["centroids"][k] if clusters else v[:0], default[k][None]])
             for k, v in sampled.items()}
    summaries, scores, points = [], [], []
    for run_dir, config in zip(run_dirs, configs):
        taken, policy = checkpoint.restore_policy(Path(run_dir) / "checkpoints", step, flag="--checkpoint {}")
        summary, context_scores = _evaluate_run(config, policy, fam, batch, contexts, clusters, episodes, seed)
        summary = {"run_dir": str(run_dir), "run_status": records.run_status(run_dir), "checkpoint": taken,
                   "env": config.env, **summary}
        if write:
            _write_run_files(Path(run_dir), summary, fam, sampled, context_scores)
        summaries.append(summary)
        scores.append(context_scores["return_mean"])
        points.append(summary["point"]["return_mean"])
    result = {"runs": summaries}
    if len(run_dirs) > 1:
        result["ranking"] = ranking_stability(np.asarray(points), np.stack(scores), seed=seed)
        result["ranking"]["runs"] = [str(d) for d in run_dirs]
    return result


def _evaluate_run(config, policy, fam, batch, contexts, clusters, episodes, seed):
    """One run's family summary and its per-context scores (over the `contexts` sampled contexts that lead
    `batch`; then the centroids of `clusters`, then the default parameters)."""
    from jaxrl.evaluate import play_episodes

    (returns, lengths, finished), seconds = play_episodes(config, policy, episodes, seed, fam, batch)
    returns = np.asarray(returns, np.float64)  # [seeds, contexts + K + 1, episodes]
    per_context = returns.mean(axis=(0, 2))
    scores = per_context[:contexts]
    point = returns[:, -1]
    summary = {
        "family": fam.spec,
        "contexts": contexts,
        "episodes_per_context": int(episodes * returns.shape[0]),
        "seed": seed,
        "point": {"return_mean": round(float(point.mean()), 4), "return_std": round(float(point.std()), 4),
                  "return_per_seed": [round(float(r), 4) for r in point.mean(1)]},
        "family_scores": {k: round(float(v), 4) for k, v in score_summary(scores).items()}
                         | {"return_per_seed": [round(float(r), 4) for r in returns[:, :contexts].mean((1, 2))]},
        "all_finished": bool(np.all(finished)),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    if clusters:
        centroid_scores = per_context[contexts:-1]
        estimate = float(np.dot(clusters["mass"], centroid_scores))
        centroids = [{**{f: float(clusters["centroids"][f][i]) for f in fam.fields}, "mass": float(mass),
                      "return_mean": float(score)}
                     for i, (mass, score) in enumerate(zip(clusters["mass"], centroid_scores))]
        summary["kmeans"] = {"k": len(centroids), "estimate": round(estimate, 4),
                             "full_mean": summary["family_scores"]["mean"],
                             "abs_error": round(abs(estimate - float(scores.mean())), 4), "centroids": centroids}
    lengths = np.asarray(lengths, np.float64).mean(axis=(0, 2))[:contexts]
    return summary, {"return_mean": scores, "return_std": returns[:, :contexts].std(axis=(0, 2)),
                     "length_mean": lengths}


def score_summary(scores: np.ndarray) -> dict[str, float]:
    """Per-context scores [C] -> mean, std, p10/p50/p90 and the mean of the worst decile (the lowest
    ceil(C/10) contexts)."""
    scores = np.sort(np.asarray(scores, np.float64))
    worst = scores[:max(1, math.ceil(len(scores) / 10))]
    p10, p50, p90 = np.percentile(scores, [10, 50, 90])
    return {"mean": scores.mean(), "std": scores.std(), "p10": p10, "p50": p50, "p90": p90,
            "worst_decile_mean": worst.mean()}


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float | None:
    """Kendall's tau-b between two score vectors (ties counted as in scipy.stats.kendalltau); None when
    either has every entry tied (no ranking)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    i, j = np.triu_indices(len(a), 1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    untied_a, untied_b = np.count_nonzero(sa), np.count_nonzero(sb)
    if untied_a == 0 or untied_b == 0:
        return None
    return float(np.sum(sa * sb) / math.sqrt(untied_a * untied_b))


def ranking_stability(point: np.ndarray, scores: np.ndarray, reps: int = BOOTSTRAP_REPS, seed: int = 0) -> dict:
    """How the point-MDP ranking of runs (`point` [R]) holds over a family (`scores` [R, C] per context, the same
    contexts for every run): Kendall tau-b between the point ranking and the family-mean ranking, and, over
    `reps` bootstrap resamples of the contexts, the probability that the family ranking reverses at least one
    pair the point MDP orders (pairs tied on the point MDP have no order to reverse), overall and per pair."""
    point, scores = np.asarray(point, np.float64), np.asarray(scores, np.float64)
    rng = np.random.default_rng(seed)
    resampled = np.stack([scores[:, rng.integers(0, scores.shape[1], scores.shape[1])].mean(1)
                          for _ in range(reps)])  # [reps, R]
    i, j = np.triu_indices(len(point), 1)
    ordered = point[i] != point[j]
    order = np.sign(point[i] - point[j])[ordered]
    flips = np.sign(resampled[:, i[ordered]] - resampled[:, j[ordered]]) == -order  # [reps, ordered pairs]
    return {
        "kendall_tau": kendall_tau(point, scores.mean(1)),
        "flip_probability": float(flips.any(1).mean()) if flips.size else 0.0,
        "pairs_tied_on_point_mdp": int(np.sum(~ordered)),
        "bootstrap_reps": reps,
        "pairs": [{"a": int(a), "b": int(b), "point_diff": float(point[a] - point[b]),
                   "family_diff": float(scores[a].mean() - scores[b].mean()), "flip_probability": float(p)}
                  for a, b, p in zip(i[ordered], j[ordered], flips.mean(0))],
    }


def kmeans_contexts(family, contexts: dict[str, np.ndarray], k: int, seed: int = 0) -> dict:
    """Cluster contexts (field -> [C]) into `k` groups: k-means++ on the fields standardised (log-scaled where
    their distribution is), then Lloyd's iterations (scipy.cluster.vq.kmeans2). Returns {"centroids": field ->
    [K] (means in the clustering space, cast to the fields' types), "mass": [K] share of contexts, "labels": [C]};
    empty clusters are dropped."""
    from scipy.cluster.vq import kmeans2

    logs = {d.field for d in family.dims if d.kind == "loguniform"}
    features = np.stack([np.log(contexts[f]) if f in logs else np.asarray(contexts[f], np.float64)
                         for f in family.fields], 1).astype(np.float64)
    center, scale = features.mean(0), features.std(0)
    scale[scale == 0] = 1.0
    with warnings.catch_warnings():  # duplicate points (choice fields) can leave a cluster empty; dropped below
        warnings.simplefilter("ignore")
        _, labels = kmeans2((features - center) / scale, k, minit="++", seed=np.random.default_rng(seed))
    kept = np.unique(labels)
    means = np.stack([features[labels == c].mean(0) for c in kept])
    centroids = {f: (np.exp(means[:, n]) if f in logs else means[:, n]) for n, f in enumerate(family.fields)}
    centroids = {f: np.asarray(v) for f, v in family.cast(centroids).items()}
    mass = np.array([np.mean(labels == c) for c in kept])
    return {"centroids": centroids, "mass": mass, "labels": np.searchsorted(kept, labels)}


def _write_run_files(run_dir: Path, summary: dict, family, contexts: dict, scores: dict) -> None:
    from jaxrl.plots import plot_family

    rows = [{"context": n, **{f: float(contexts[f][n]) for f in family.fields},
             **{k: round(float(v[n]), 4) for k, v in scores.items()}} for n in range(len(scores["return_mean"]))]
    records.write_csv(run_dir / "family_contexts.csv", rows)
    plot_family(run_dir / "family_eval.png", contexts, scores["return_mean"], summary)
    records.atomic_write(run_dir / "family_eval.json", json.dumps(summary, indent=2))
