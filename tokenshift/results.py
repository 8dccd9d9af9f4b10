"""Benchmark result files: `bench/results/<name>.json`, one format for every benchmark."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """What the numbers were measured on (timings are only comparable as ratios)."""
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_result(path: str | Path, name: str, config: dict, metrics: dict, baseline: dict) -> Path:
    """Write `{"name", "date", "machine", "config", "metrics", "baseline"}` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "config": config,
        "metrics": metrics,
        "baseline": baseline,
    }
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path
