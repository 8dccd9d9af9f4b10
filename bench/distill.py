"""Recovery after a transplant: LM-loss finetune vs ALM distillation, at equal steps and text.

    python bench/distill.py [--quick] [--steps 100 300] [--out bench/results/transplant_distill.json]

SmolLM2-135M (offline GGUF) is given the GPT-2 tokenizer by TokenAdapt (the
baseline: that transplant, the same run); then, from that same transplant,
(a) `finetune_embeddings` (the student's own next-token loss) and (b)
`distill_transplant` (ALM, the original SmolLM2 as teacher), each for N steps
on the same rows of the first `--train-bytes` of ../shared/data/en.txt, same
batch, block, learning rate, schedule and seed, embeddings and head only.
Judged by `token_bits_per_byte` on the first 16 kB of en and code valid; the
share of the transplant's excess bits per byte (over the original SmolLM2 on
the same bytes) that each recovers. Targets: distillation recovers >= 3x the
share the finetune does, and >= 40% of the English excess within 300 steps.
`--quick`: FVT-mean transplant, 2 steps of 1 x 32 tokens, 1 kB of each text
(a smoke run; 3 steps of 2 x 64 took 14 min on the 2 shared cores at load 6,
most of it loading, transplanting and scoring). The transplanted model is cached under
`--cache` (outside the repository) so a rerun skips TokenAdapt.
"""
from __future__ import annotations

import argparse
import copy
import gc
import sys
import time
from pathlib import Path

import torch

from tokenshift.assets import load_model, load_tokenizer
from tokenshift.bytelevel.scoring import token_bits_per_byte
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant import AuxEmbedder, finetune_embeddings, transplant
from tokenshift.transplant.distill import distill_transplant

FILES = ("en", "code")


def evaluate(model, tokenizer, texts: dict[str, bytes]) -> dict[str, float]:
    return {name: token_bits_per_byte(model, tokenizer, [data], progress=False)["bits_per_byte"]
            for name, data in texts.items()}


def transplanted(method: str, cache: Path | None, model, old_tok, tok):
    """The transplant, from the cache folder when it holds one of this method."""
    from transformers import AutoModelForCausalLM

    folder = cache / f"smollm2-gpt2-{method}" if cache else None
    if folder is not None and (folder / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), True
    new = transplant(model, old_tok, tok, method=method, aux_embedder=AuxEmbedder() if method == "tokenadapt"
                     else None)
    if folder is not None:
        new.save_pretrained(folder)
    return new, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (FVT transplant, 2 tiny steps)")
    parser.add_argument("--steps", type=int, nargs="+", default=[100], help="step budgets to compare (default 100)")
    parser.add_argument("--batch", type=int, default=2, help="rows per step (default 2)")
    parser.add_argument("--block", type=int, default=128, help="student tokens per row (default 128)")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of both runs (default 1e-4)")
    parser.add_argument("--train-bytes", type=int, default=200_000, help="bytes of en.txt to train on")
    parser.add_argument("--eval-bytes", type=int, default=16_384, help="bytes of each valid text")
    parser.add_argument("--method", default="tokenadapt", help="transplant method (default tokenadapt)")
    parser.add_argument("--only", choices=("finetune", "distill"), help="run only one of the two recoveries")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tokenshift-bench-distill"),
                        help="folder for the transplanted model (outside the repository)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/transplant_distill.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch, args.block, args.eval_bytes, args.method = [2], 1, 32, 1024, "mean"
        args.train_bytes = 20_000
        if args.out == Path("bench/results/transplant_distill.json"):
            args.out = Path("/tmp/transplant_distill_quick.json")
    data = shared_data_dir()
    if data is None:
        sys.exit("bench/distill.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[: args.eval_bytes] for name in FILES}
    train = [(data / "en.txt").read_bytes()[: args.train_bytes].decode("utf-8", "ignore")]
    t0 = time.perf_counter()
    teacher, old_tok = load_model("smollm2")
    tok = load_tokenizer("gpt2")
    original = evaluate(teacher, old_tok, texts)
    print("original", {k: round(v, 4) for k, v in original.items()}, flush=True)
    t1 = time.perf_counter()
    base, cached = transplanted(args.method, args.cache, teacher, old_tok, tok)
    transplant_seconds = time.perf_counter() - t1
    before = evaluate(base, tok, texts)
    excess = {k: before[k] - original[k] for k in FILES}
    print(args.method, {k: round(v, 4) for k, v in before.items()}, flush=True)

    common = dict(batch_size=args.batch, block_size=args.block, learning_rate=args.lr, seed=0, device="cpu")
    runs: dict[str, dict] = {}

    def record(done: bool) -> None:
        metrics = {"original": original, "transplant": {"bits_per_byte": before, "excess_bits_per_byte": excess},
                   "runs": runs, "complete": done, "total_seconds": time.perf_counter() - t0}
        targets = {}
        for steps in args.steps:
            ft, di = runs.get(f"finetune_{steps}"), runs.get(f"distill_{steps}")
            if ft and di:
                ratio = {k: di["excess_recovered"][k] / ft["excess_recovered"][k]
                         if ft["excess_recovered"][k] > 0 else None for k in FILES}
                targets[str(steps)] = {"distill_over_finetune_recovered": ratio,
                                       "target_3x_met": all(r is not None and r >= 3 for r in ratio.values())}
            if di:
                targets.setdefault(str(steps), {})["target_40pct_en_met"] = (
                    di["excess_recovered"]["en"] >= 0.4 if steps <= 300 else None)
        metrics["targets"] = targets
        write_result(args.out, "transplant_distill",
                     config={"model": "smollm2 (SmolLM2-135M, offline GGUF)", "target": "gpt2",
                             "method": args.method, "transplant_cached": cached,
                             "transplant_seconds": transplant_seconds, "steps": args.steps, "batch_size": args.batch,
                             "block_size": args.block, "learning_rate": args.lr, "eval_bytes": args.eval_bytes,
                             "files": list(FILES), "train_text": f"first {args.train_bytes} bytes of "
                             "../shared/data/en.txt", "threads": torch.get_num_threads(), "quick": args.quick,
                             "metric": "token_bits_per_byte (window 512, after <|endoftext|>/BOS)",
                             "trained": "embeddings + head (tied), every row; body frozen"},
                     metrics=metrics,
                     baseline={"method": "the same run's transplant before recovery; excess = bpb - the original "
                                         "SmolLM2's on the same bytes; recovered = 1 - excess_after / excess_before",
                               "lm_finetune": "finetune_embeddings (next-token loss), same steps, text, batch, lr"})

    for steps in args.steps:
        for kind in ("distill", "finetune"):  # distillation first: the row a stopped run must not lose
            if args.only and kind != args.only:
                continue
            student = copy.deepcopy(base)
            if kind == "finetune":
                summary = finetune_embeddings(student, tok, train, steps, **common)
            else:
                summary = distill_transplant(teacher, old_tok, student, tok, train, steps, **common)
            after = evaluate(student, tok, texts)
            recovered = {k: 1 - (after[k] - original[k]) / excess[k] for k in FILES}
            runs[f"{kind}_{steps}"] = {
                "bits_per_byte": after, "excess_bits_per_byte": {k: after[k] - original[k] for k in FILES},
                "excess_recovered": recovered,
                "train": {k: v for k, v in summary.items() if k not in ("losses", "alm_losses")},
                "losses": summary["losses"]}
            print(f"{kind} {steps} steps", {k: round(v, 4) for k, v in after.items()}, "recovered",
                  {k: round(v, 3) for k, v in recovered.items()}, f"{summary['seconds']:.0f}s", flush=True)
            del student
            gc.collect()
            record(done=False)
    record(done=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
