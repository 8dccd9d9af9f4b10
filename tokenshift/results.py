"""Benchmark result files: `bench/results/<name>.json`, one format for every benchmark."""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
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


def command_line() -> str:
    """How this process was started, as a shell line: `python bench/fim.py --quick` for a script (its
    folder and name), `tokenshift audit gpt2 --json a.json` for the CLI; `OMP_NUM_THREADS=N ` first when set."""
    program = Path(sys.argv[0]).resolve()
    head = ["python", f"{program.parent.name}/{program.name}"] if program.suffix == ".py" else [program.name]
    threads = os.environ.get("OMP_NUM_THREADS")
    return (f"OMP_NUM_THREADS={shlex.quote(threads)} " if threads else "") + shlex.join(head + sys.argv[1:])


def write_result(path: str | Path, name: str, config: dict, metrics: dict, baseline: dict,
                 keeps: dict | None = None) -> Path:
    """Write `{"name", "date", "machine", "command", "config", "metrics", "baseline"}` as JSON.

    `command` is `command_line()`. A run that keeps figures of an earlier record (one part of a benchmark
    rerun) passes that record as `keeps`: its command goes first, `A && B`; if it has none (written before
    records stored their command) none is stored, and bench/report.py rebuilds one from the config.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    command: str | None = command_line()
    if keeps is not None:
        before = keeps.get("command")
        if before is None or before.rsplit(" && ", 1)[-1] == command:
            command = before  # none, or already there (a run that saves as it goes reads its own record back)
        else:
            command = f"{before} && {command}"
    record = {
        "name": name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **({"command": command} if command is not None else {}),
        "config": config,
        "metrics": metrics,
        "baseline": baseline,
    }
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return path
