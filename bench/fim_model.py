"""Train the small FIM code model that bench/fim.py part (b) uses: a TokenLM with fim_rate 0.5.

    python bench/fim_model.py [--steps 1500] [--out runs/fim-tokenlm]

The documents are the blocks of ../shared/data/code.txt between blank lines
(functions, classes, statement groups: short enough that a FIM-rewritten
document fits in one 256-token row, so every FIM example is seen whole),
written to runs/fim-data/. Training is `tokenshift train` on
models/configs/tokenlm-tiny.yaml with a code-only byte-level BPE that has the
FIM tokens, `--data.fim_rate 0.5` (half of those SPM, as Bavarian et al.),
then the model is exported as a Hugging Face folder to `--out`.

Why not `models/configs/tokenlm-code-fim-tiny.yaml`: that config is the
general recipe for users (whole files, FIM applied per `fim_span_chars` span,
3000 steps); this script is the benchmark's recipe (block documents, 1500
steps), kept so that bench/fim.py part (b)'s model can be rebuilt exactly.
Both share the architecture and `fim_rate`/`fim_spm_rate`.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tokenshift.data import shared_data_dir


def blocks(text: str) -> str:
    """The file text without `# file:` headers: documents are then split at blank lines."""
    return re.sub(r"(?m)^# file: .*\n", "", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=Path("runs/fim-tokenlm"))
    parser.add_argument("--train-bytes", type=int, default=3_000_000)
    args, rest = parser.parse_known_args()
    corpora = shared_data_dir()
    if corpora is None:
        sys.exit("bench/fim_model.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    data = Path("runs/fim-data")
    data.mkdir(parents=True, exist_ok=True)
    for name in ("code.txt", "code.valid.txt"):
        (data / name).write_text(blocks((corpora / name).read_text()))
    root = Path("runs/fim-train")
    from tokenshift.models.train import main as train

    train(["--config", "models/configs/tokenlm-tiny.yaml",
           "--data.train_files", f"[{data / 'code.txt'}]", "--data.languages", "[code]",
           "--data.fim_rate", "0.5", "--data.tokenizer", str(root / "tokenizer"),
           "--data.seq_len", "256", "--data.train_bytes", str(args.train_bytes),
           "--trainer.max_steps", str(args.steps), "--trainer.default_root_dir", str(root),
           "--trainer.logger.init_args.save_dir", str(root),
           "--trainer.callbacks.init_args.dirpath", str(root / "checkpoints"),
           "--export_dir", str(args.out), *rest])


if __name__ == "__main__":
    main()
