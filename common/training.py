"""Training plumbing shared by `models`, `hypernet` and `transplant`: the LR schedule, Lightning callbacks
(export at the end, per-step metrics), and the LightningCLI base with one run folder per run.
"""
from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional

import lightning as L
from lightning.pytorch.cli import LightningCLI


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the base lr: linear warmup over `warmup` steps, cosine to `min_ratio` at `total`.

    Example: warmup 10, total 110, min 0.1: step 0 -> 0.1, step 10 -> 1.0, step 60 -> 0.55, step 110 -> 0.1.
    """
    if step < warmup:
        return (step + 1) / warmup
    if total is None or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


RUN_DIR = "{run_dir}"  # in a config value: the run folder (trainer.default_root_dir)


class ExportPretrained(L.Callback):
    """When training ends: a `last.ckpt` beside the periodic ones (so `--ckpt_path last` with a larger
    `max_steps` continues from the end), and the network via `save_pretrained` (rank 0)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        ckpt = trainer.checkpoint_callback
        if ckpt is not None and getattr(ckpt, "dirpath", None):
            trainer.save_checkpoint(Path(ckpt.dirpath) / "last.ckpt")  # every rank takes part
        if trainer.is_global_zero:
            module.net.save_pretrained(self.path)


class MetricsLog(L.Callback):
    """Append every training step's logged numbers (and each validation's) to a JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _write(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.is_global_zero:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/", "lr"))}
            self._write({"step": trainer.global_step, "wall": time.time(), **metrics})

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking and getattr(module, "history", None):
            self._write({"step": trainer.global_step, "wall": time.time(), "valid": module.history[-1]})


class RunFolderCLI(LightningCLI):
    """LightningCLI whose checkpoints, logs and resume point all follow one run folder.

    Before any class is built: the run folder defaults to `runs/<config name>`, `{run_dir}` in
    config values becomes it, a ModelCheckpoint without `dirpath` writes to `<run>/checkpoints`,
    and `--ckpt_path last` is resolved to that folder's `last.ckpt` (an error when there is none),
    so a run never resumes or overwrites another run's checkpoints.
    """

    run_name = "train"
    export_help = "where the trained model is saved (default <run folder>/model)"

    def add_arguments_to_parser(self, parser: Any) -> None:
        parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                            help="resume from this checkpoint, or 'last' for this run folder's last.ckpt")
        parser.add_argument("--export_dir", type=Optional[str], default=None, help=self.export_help)

    def before_instantiate_classes(self) -> None:
        config = self.config
        trainer = config.trainer
        if trainer.default_root_dir is None:
            files = config.get("config") or []
            name = Path(str(files[-1])).stem if files else self.run_name
            trainer.default_root_dir = str(Path("runs") / name)
        root = Path(str(trainer.default_root_dir))
        substitute_run_dir(config, str(root))
        folders = []
        for callback in trainer.callbacks or []:
            if str(getattr(callback, "class_path", "")).endswith("ModelCheckpoint"):
                if callback.init_args.get("dirpath") is None:
                    callback.init_args.dirpath = str(root / "checkpoints")
                folders.append(Path(str(callback.init_args.dirpath)))
        config.ckpt_path = resume_point(config.ckpt_path, folders, root)


def substitute_run_dir(node: Any, root: str) -> Any:
    """Replace `{run_dir}` in every string of a parsed config (Namespaces, lists, dicts), in place."""
    from jsonargparse import Namespace

    if isinstance(node, str):
        return node.replace(RUN_DIR, root)
    if isinstance(node, Namespace):
        for key, value in vars(node).items():
            setattr(node, key, substitute_run_dir(value, root))
    elif isinstance(node, list):
        node[:] = [substitute_run_dir(v, root) for v in node]
    elif isinstance(node, dict):
        for key, value in node.items():
            node[key] = substitute_run_dir(value, root)
    return node


def resume_point(ckpt_path: str | None, folders: list[Path], root: Path) -> str | None:
    """The checkpoint file `fit` resumes from; `last` means this run's own last.ckpt.

    Raises ValueError when there is nothing to resume; warns (stderr) when a new run is about
    to overwrite an earlier run's checkpoints in the same folder.
    """
    where = ", ".join(str(f) for f in folders) or f"{root} (no ModelCheckpoint callback)"
    if ckpt_path == "last":
        found = [f / "last.ckpt" for f in folders if (f / "last.ckpt").is_file()]
        if not found:  # killed between the periodic checkpoint and its last.ckpt copy: the newest one
            periodic = sorted((c for f in folders if f.is_dir() for c in f.glob("*.ckpt")), key=_step_of)
            if periodic:
                print(f"note: no last.ckpt in {where}; resuming from the newest checkpoint, {periodic[-1]}",
                      file=sys.stderr)
                return str(periodic[-1])
            raise ValueError(f"--ckpt_path last: nothing to resume, no last.ckpt in {where} (run folder {root}); "
                             "drop --ckpt_path to start this run, or pass --trainer.default_root_dir of the run "
                             "to resume")
        return str(found[0])
    if ckpt_path is not None:
        if not Path(ckpt_path).is_file():
            raise ValueError(f"--ckpt_path: {ckpt_path!r} is not a checkpoint file (or use 'last')")
        return ckpt_path
    earlier = [f for f in folders if f.is_dir() and any(f.glob("*.ckpt"))]
    if earlier:
        print(f"note: {earlier[0]} already holds checkpoints of an earlier run; this run starts at step 0 and "
              "replaces them (to continue that run instead, pass --ckpt_path last)", file=sys.stderr)
    return None


def _step_of(path: Path) -> tuple[int, float]:
    """Sort key of a checkpoint file: the step in its name (`...step=120...`), then its time."""
    found = re.search(r"step=(\d+)", path.name)
    return int(found.group(1)) if found else -1, path.stat().st_mtime


def parser_error_summary(message: str) -> str:
    """The one line of a LightningCLI parse error that names what was wrong (it may run to 80 lines)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    key = re.search(r'Parser key "([^"]+)"', message)
    for pattern in (r"Option '([^']+)' is not accepted", r"Key \"?'?([\w.]+)'?\"? is required",
                    r"Unrecognized arguments: (.+)"):
        found = re.search(pattern, message)
        if found:
            return f"{found.group(0)}" + (f" (in {key.group(1)})" if key and key.group(1) not in found.group(0) else "")
    return lines[0] if lines else "invalid arguments"


def build_cli(cli_class: type, model_class: type, data_class: type, argv: list[str] | None, prog: str,
              description: str, **kwargs: Any) -> Any:
    """`cli_class(model_class, data_class, run=False, args=argv)`. A bad option prints the one line that
    matters first (the parser's full message follows it) and exits 2."""
    import os
    import warnings

    from jsonargparse import ArgumentError

    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # LightningCLI's, not ours to fix
    with warnings.catch_warnings():  # `args=` beside sys.argv is intended: `tokenshift train` hands them on
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
        try:
            return cli_class(model_class, data_class, run=False, args=argv, save_config_kwargs={"overwrite": True},
                             parser_kwargs={"prog": prog, "description": description, "exit_on_error": False},
                             **kwargs)
        except ArgumentError as err:
            summary = parser_error_summary(str(err))
            print(f"{prog}: error: {summary}\n(details below; all options: {prog} --help)\n{err}", file=sys.stderr)
            raise SystemExit(2) from None
