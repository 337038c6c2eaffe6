"""A sweep's runs and their ranking: the runs.csv rows (written and read back), one ranked row per
point with its mean and 95% bootstrap CI over seeds, and the ranking as a text table."""

from __future__ import annotations

import math

import numpy as np

from jaxrl.config import format_value
from jaxrl.stats import bootstrap_ci, nanmean
from jaxrl.sweep.spec import SweepSpec


def round_metric(x) -> float | str:
    """A return or score as records keep it: 4 decimals, '' for NaN (no episode finished)."""
    x = float(x)
    return "" if math.isnan(x) else round(x, 4)


def csv_value(v):
    """A swept value as a CSV cell (a tuple formatted as one string)."""
    return format_value(v) if isinstance(v, tuple) else v


def run_row(spec: SweepSpec, point: int, seed: int, group: int, values: dict, final: float, auc: float,
            diverged_at: int) -> dict:
    """The runs.csv row of run (point, seed index): its swept `values`, final return, AUC and status
    (`diverged_at`: the update it diverged at, -1 if it finished)."""
    return {"run": point * spec.seeds + seed, "point": point, "seed": spec.seed + seed, "group": group,
            **{k: csv_value(v) for k, v in values.items()},
            "final_return": round_metric(final), "auc": round_metric(auc),
            "status": "diverged" if diverged_at >= 0 else "finished",
            "diverged_at": diverged_at if diverged_at >= 0 else ""}


def read_run_row(row: dict, points: list[dict]) -> dict:
    """A runs.csv row read back with the types `run_row` wrote it with."""
    number = lambda v, cast: cast(v) if v != "" else ""
    point = int(row["point"])
    return {"run": int(row["run"]), "point": point, "seed": int(row["seed"]), "group": int(row["group"]),
            **{k: csv_value(v) for k, v in points[point].items()},
            "final_return": number(row["final_return"], float), "auc": number(row["auc"], float),
            "status": row["status"], "diverged_at": number(row["diverged_at"], int)}


def rank_points(spec: SweepSpec, points: list[dict], runs: list[dict]) -> list[dict]:
    """One row per point that ran: mean and 95% bootstrap CI over seeds; points with diverged runs last."""
    by_point: dict[int, list[dict]] = {}
    for r in runs:
        by_point.setdefault(r["point"], []).append(r)
    rows = []
    for p, rs in by_point.items():
        column = lambda name: np.array([r[name] if r[name] != "" else np.nan for r in rs], np.float64)
        values = column(spec.metric)
        low, high = bootstrap_ci(values)
        rows.append({"point": p, **{k: csv_value(v) for k, v in points[p].items()},
                     "score": round_metric(nanmean(values)), "ci_low": round_metric(low),
                     "ci_high": round_metric(high), "final_return": round_metric(nanmean(column("final_return"))),
                     "auc": round_metric(nanmean(column("auc"))),
                     "seeds": len(rs), "diverged": sum(r["status"] == "diverged" for r in rs)})
    number = lambda x: x if x != "" else -math.inf
    # Points with a diverged run last; ties of the metric (CartPole's cap of 500) broken by the faster learner.
    rows.sort(key=lambda r: (r["diverged"] > 0, -number(r["score"]), -number(r["auc"])))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def format_ranking(spec: SweepSpec, ranking: list[dict], top: int = 10, bottom: int = 5) -> str:
    """The ranking as a text table: the best `top` points and the worst `bottom`."""
    names = [d.name for d in spec.space]
    header = ["rank", "point", *names, f"{spec.metric} (mean [95% CI] over seeds)", "status"]
    shown = ranking if len(ranking) <= top + bottom else ranking[:top] + [None] + ranking[-bottom:]
    lines = []
    for row in shown:
        if row is None:
            lines.append(["..."] + [""] * (len(header) - 1))
            continue
        score = "-" if row["score"] == "" else f"{row['score']:.1f} [{row['ci_low']:.1f}, {row['ci_high']:.1f}]"
        status = f"diverged {row['diverged']}/{row['seeds']}" if row["diverged"] else "ok"
        lines.append([str(row["rank"]), str(row["point"]), *[format_value(row[n]) for n in names], score, status])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])
