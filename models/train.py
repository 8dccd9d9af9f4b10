"""`tokenshift train`: LightningCLI over `LitLM` and `TextData`, configured by YAML.

    tokenshift train --config models/configs/hat-tiny.yaml
    tokenshift train --config models/configs/hat-tiny.yaml --ckpt_path last      # resume after a kill
    tokenshift train --config models/configs/tokenlm-tiny.yaml --data.fim_rate 0.5 --data.languages '[code]'
    tokenshift train --config models/configs/hat-small.yaml --trainer.accelerator gpu \\
        --trainer.devices 2 --trainer.strategy ddp                                 # DDP (or fsdp) via Lightning

Every option of the YAML can be overridden on the command line (`--help`
lists them). One run folder holds everything a run writes:
`--trainer.default_root_dir` (default `runs/<config name>`). Checkpoints go to
`<run>/checkpoints` (every N steps plus `last.ckpt`), the CSV logs to
`<run>/lightning_logs`, per-step metrics to `<run>/metrics.jsonl` (a resumed
run keeps appending) and the trained model to `--export_dir` (default
`<run>/model`), as safetensors + config JSON (an HF folder for TokenLM), ready
for `tokenshift score DIR` and `tokenshift generate DIR`. In a config,
`{run_dir}` stands for that folder. `--ckpt_path last` resumes that run's own
`last.ckpt` (same step count, optimizer state and data position) and stops
with a clear error when the run folder has none; a new run in a folder that
already holds checkpoints says so, as it will replace them.
DDP and FSDP work through Lightning's strategies: `TextData` gives each rank a
disjoint slice of every step's global batch (`--data.batch_size` is per
device; the global batch is that times the number of devices), and HAT
computes its word layout per batch on each rank. Checked on CPU with two gloo
processes (`tests/models/test_training.py::test_ddp_ranks_see_disjoint_rows`).
"""
from __future__ import annotations

from pathlib import Path

from tokenshift.common.training import (  # noqa: F401  (re-exported: tests and the hypernet use these names)
    RUN_DIR,
    ExportPretrained,
    MetricsLog,
    RunFolderCLI,
    build_cli,
    resume_point,
    substitute_run_dir,
)

def main(argv: list[str] | None = None) -> int:
    """Parse the YAML and flags, train, export. Returns 0."""
    from .data import TextData
    from .lit import LitLM

    cli = build_cli(RunFolderCLI, LitLM, TextData, argv, "tokenshift train", __doc__.splitlines()[0],
                    trainer_defaults={"use_distributed_sampler": False})  # TextData shards by rank itself
    trainer = cli.trainer
    root = Path(trainer.default_root_dir)
    export = Path(cli.config.export_dir) if cli.config.export_dir else root / "model"
    trainer.callbacks.extend([ExportPretrained(export), MetricsLog(root / "metrics.jsonl")])
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    if trainer.is_global_zero:
        print(f"model written to {export}; try: tokenshift generate {export} --prompt 'The '")
    return 0
