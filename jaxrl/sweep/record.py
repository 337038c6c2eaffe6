"""The sweep directory: what a sweep writes as it runs, and how a directory is recognised as one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from jaxrl import records
from jaxrl.config import to_dict
from jaxrl.sweep.spec import SweepSpec


def is_sweep_dir(path: str | Path) -> bool:
    return (Path(path) / "points.yaml").is_file() and (Path(path) / "spec.yaml").is_file()


class SweepRecord(records.Record):
    """The sweep directory: spec.yaml, points.yaml, metadata.json, runs.csv, curves.npz, ranking.csv,
    best.yaml, summary.json, hparams.png, top_curves.png (all written atomically)."""

    def __init__(self, path: Path, spec: SweepSpec, points: list[dict]):
        self.path = Path(path)
        self.write_yaml("spec.yaml", spec.raw)
        self.write_yaml("points.yaml", [{k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}
                                        for p in points])
        super().__init__(path)

    def write_runs(self, rows: list[dict]) -> None:
        records.write_csv(self.path / "runs.csv", rows)

    def write_curves(self, curves: dict[str, np.ndarray]) -> None:
        records.save_arrays(self.path / "curves.npz", curves)

    def write_ranking(self, ranking: list[dict]) -> None:
        if ranking:
            records.write_csv(self.path / "ranking.csv", ranking)

    def write_best(self, spec: SweepSpec, config, row: dict) -> None:
        header = (f"# best point of sweep {spec.name!r} (point {row['point']}): {spec.metric} {row['score']} "
                  f"(95% CI {row['ci_low']}..{row['ci_high']}) over seeds {spec.seed}..{spec.seed + spec.seeds - 1}\n"
                  f"# retrain: jaxrl train --config best.yaml\n")
        body = yaml.safe_dump({"algo": spec.algo, **to_dict(config)}, sort_keys=False)
        records.atomic_write(self.path / "best.yaml", header + body)
