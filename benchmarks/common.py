"""What every benchmark's results file starts with: the machine and package versions."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from pathlib import Path


def machine() -> dict:
    from importlib.metadata import version

    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import jax

    return {"cpu": cpu, "cores": os.cpu_count(), "device": jax.devices()[0].device_kind,
            "python": platform.python_version(),
            "versions": {p: version(p) for p in ("jax", "jaxlib", "flax", "optax", "gymnax")},
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def write_results(text: str, out) -> None:
    """Print a results table and, when `out` is given, write it there."""
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
        print(f"wrote {out}")


def provenance(script: str, info: dict) -> list[str]:
    """Two lines: the command and date, then the machine and versions."""
    return [f"Produced by `python benchmarks/{script}` on {info['date']}.",
            f"Machine: {info['cpu']}, {info['cores']} cores, device {info['device']}; Python {info['python']}; "
            + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "."]
