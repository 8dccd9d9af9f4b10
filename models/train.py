"""`tokenshift train`: LightningCLI over `LitLM` and `TextData`, configured by YAML.

    tokenshift train --config models/configs/hat-tiny.yaml
    tokenshift train --config models/configs/hat-tiny.yaml --ckpt_path last      # resume after a kill
    tokenshift train --config models/configs/tokenlm-tiny.yaml --data.fim_rate 0.5 --data.languages '[code]'
    tokenshift train --config models/configs/hat-small.yaml --trainer.accelerator gpu \\
        --trainer.devices 2 --trainer.strategy ddp                                 # DDP (or fsdp) via Lightning

Every option of the YAML can be overridden on the command line (`--help`
lists them). Checkpoints go where the config's ModelCheckpoint says (every N
steps plus `last.ckpt`); `--ckpt_path last` resumes from there with the same
step count, optimizer state and data position. When training ends the model
is written to `--export_dir` (default `<trainer.default_root_dir>/model`) as
safetensors + config JSON (an HF folder for TokenLM), ready for
`tokenshift score DIR` and `tokenshift generate DIR`. Per-step metrics are
appended to `<default_root_dir>/metrics.jsonl` (a resumed run keeps writing).
DDP and FSDP work through Lightning's strategies: `TextData` gives each rank a
disjoint slice of every step's global batch (`--data.batch_size` is per
device; the global batch is that times the number of devices), and HAT
computes its word layout per batch on each rank. Checked on CPU with two gloo
processes (`tests/models/test_training.py::test_ddp_ranks_see_disjoint_rows`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import lightning as L


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


def main(argv: list[str] | None = None) -> int:
    """Parse the YAML and flags, train, export. Returns 0."""
    import os
    import warnings

    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # LightningCLI's, not ours to fix
    from lightning.pytorch.cli import LightningCLI

    from .data import TextData
    from .lit import LitLM

    class TrainCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                                help="resume from this checkpoint, or 'last' for the latest one")
            parser.add_argument("--export_dir", type=Optional[str], default=None,
                                help="where the trained model is saved (default <default_root_dir>/model)")

    with warnings.catch_warnings():  # `args=` beside sys.argv is intended: `tokenshift train` hands them on
        warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")
        cli = TrainCLI(LitLM, TextData, run=False, args=argv, save_config_kwargs={"overwrite": True},
                       trainer_defaults={"use_distributed_sampler": False},  # TextData shards by rank itself
                       parser_kwargs={"prog": "tokenshift train", "description": __doc__.splitlines()[0]})
    trainer = cli.trainer
    root = Path(trainer.default_root_dir)
    export = Path(cli.config.export_dir) if cli.config.export_dir else root / "model"
    trainer.callbacks.extend([ExportPretrained(export), MetricsLog(root / "metrics.jsonl")])
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    if trainer.is_global_zero:
        print(f"model written to {export}; try: tokenshift generate {export} --prompt 'The '")
    return 0
