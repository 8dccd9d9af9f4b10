"""Tokenizer transplant on a real model: every method, five target tokenizers, judged in bits per byte.

    python bench/transplant.py [--quick] [--out bench/results/transplant.json]
    python bench/transplant.py --finetune-steps 30     # only the finetune section (transplant_finetune.json)

SmolLM2-135M (offline GGUF) is given each target tokenizer by each method;
bits per byte (plain tokenization, `token_bits_per_byte`) on the first bytes
of ../shared/data {en, code, de, ru}.valid.txt, against the original model on
the same bytes (the baseline, same run). Targets: GPT-2 BPE (50k), Mistral v1
SentencePiece (32k), cl100k (100k), a 32k byte-level BPE trained here on
de.txt, and a 32k supertoken tokenizer learned from en.txt. Also a sweep of
TokenAdapt's T, k and w on GPT-2 (en and code). Target: TokenAdapt's excess
bits per byte <= 1/2 of `mean`'s (FVT) on every target, and no worse than
`local` or `global` alone.

`--finetune-steps N` runs only a separate section (the rest and its results
are left alone): SmolLM2 -> GPT-2 with TokenAdapt, then N steps of
`finetune_embeddings` (embeddings and head only) on the first
`--finetune-bytes` of en.txt, judged on the first 4096 bytes of en and code
valid with the same metric; the baseline is the same run's transplant before
finetuning. Results in `bench/results/transplant_finetune.json`.
"""
from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

from tokenshift.assets import load_model, load_tokenizer
from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.scoring import token_bits_per_byte
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant import METHODS, AuxEmbedder, finetune_embeddings, transplant
from tokenshift.transplant.supertokens import bytes_per_token, learn_supertokens


def train_bpe(text: str, vocab_size: int):
    """A byte-level BPE (GPT-2 pre-tokenizer) trained on `text`, as an HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.splitlines(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def evaluate(model, tokenizer, texts: dict[str, bytes]) -> dict[str, dict]:
    return {name: token_bits_per_byte(model, tokenizer, [data], progress=False) for name, data in texts.items()}


def summarise(scores: dict[str, dict], original: dict[str, dict]) -> dict:
    out = {}
    for name, s in scores.items():
        o = original[name]
        out[name] = {
            "bits_per_byte": s["bits_per_byte"], "ratio_to_original": s["bits_per_byte"] / o["bits_per_byte"],
            "excess_bits_per_byte": s["bits_per_byte"] - o["bits_per_byte"],
            "token_perplexity_ratio": s["token_perplexity"] / o["token_perplexity"],
            "bytes_per_token": s["bytes_per_token"],
        }
    out["mean_excess_bits_per_byte"] = sum(v["excess_bits_per_byte"] for v in out.values()) / len(scores)
    return out


def save(args, original, results, sweep, eval_bytes, files, methods, done: bool) -> None:
    metrics = {"original": original, "targets": results, "sweep_gpt2": sweep, "complete": done,
               "targets_met": {t: e.get("target_half_of_mean") for t, e in results.items()}}
    write_result(args.out, "transplant",
                 config={"model": "smollm2 (SmolLM2-135M, offline GGUF)", "aux": "all-MiniLM-L6-v2",
                         "eval_bytes": eval_bytes, "files": list(files), "methods": list(methods),
                         "defaults": {"temperature": 0.3, "top_k": 3, "weight": 0.3, "threshold": 0.0},
                         "quick": args.quick, "metric": "token_bits_per_byte (window 512, after <|endoftext|>/BOS)"},
                 metrics=metrics,
                 baseline={"method": "the original SmolLM2 on the same bytes (excess = bpb_new - bpb_original); "
                                     "FVT mean of subtokens (target: TokenAdapt excess <= 0.5 x mean's)",
                           "reference": "reference TokenAdapt code, SmolLM2 -> GPT-2 + MiniLM: 0.60 of mean's excess "
                                        "(../shared/methods/transplant.md)"})


def finetune_section(args) -> None:
    """TokenAdapt to GPT-2, then the embeddings/head recovery finetune; bits per byte before and after."""
    data = shared_data_dir()
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[:4096] for name in ("en", "code")}
    train = (data / "en.txt").read_bytes()[: args.finetune_bytes].decode("utf-8", "ignore")
    t0 = time.perf_counter()
    model, old_tok = load_model("smollm2")
    tok = load_tokenizer("gpt2")
    original = evaluate(model, old_tok, texts)
    new = transplant(model, old_tok, tok, method="tokenadapt", aux_embedder=AuxEmbedder())
    del model
    gc.collect()
    transplanted = summarise(evaluate(new, tok, texts), original)
    print("transplant", {k: round(v["bits_per_byte"], 4) for k, v in transplanted.items() if isinstance(v, dict)},
          flush=True)
    ft = finetune_embeddings(new, tok, [train], args.finetune_steps, batch_size=args.finetune_batch,
                             block_size=args.finetune_block, learning_rate=args.finetune_lr,
                             train_new_rows_only=args.finetune_new_only, device="cpu")
    finetuned = summarise(evaluate(new, tok, texts), original)
    print("finetuned", {k: round(v["bits_per_byte"], 4) for k, v in finetuned.items() if isinstance(v, dict)},
          f"loss {ft['loss_start']:.3f} -> {ft['loss_end']:.3f}, {ft['seconds']:.0f}s", flush=True)
    recovered = {name: 1 - finetuned[name]["excess_bits_per_byte"] / transplanted[name]["excess_bits_per_byte"]
                 for name in texts}
    write_result(args.finetune_out, "transplant_finetune",
                 config={"model": "smollm2 (SmolLM2-135M, offline GGUF)", "target": "gpt2", "method": "tokenadapt",
                         "eval_bytes": 4096, "files": list(texts), "train_text": f"first {args.finetune_bytes} bytes "
                         "of ../shared/data/en.txt", "threads": torch_threads(),
                         "metric": "token_bits_per_byte (window 512, after <|endoftext|>/BOS)",
                         "finetune": {k: v for k, v in ft.items() if k != "losses"}},
                 metrics={"original": original, "transplant": transplanted, "finetuned": finetuned,
                          "excess_recovered": recovered, "losses": ft["losses"],
                          "total_seconds": time.perf_counter() - t0},
                 baseline={"method": "the same run's TokenAdapt transplant before finetuning (excess = bpb - the "
                                     "original SmolLM2's on the same bytes)"})
    print(f"wrote {args.finetune_out}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="GPT-2 only, three methods, tiny texts (under a minute "
                                                             "once the MiniLM cache is warm)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/transplant.json"))
    parser.add_argument("--finetune-steps", type=int, help="run only the finetune section, with this many steps")
    parser.add_argument("--finetune-batch", type=int, default=4, help="rows per step (default 4)")
    parser.add_argument("--finetune-block", type=int, default=128, help="tokens per row (default 128)")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    parser.add_argument("--finetune-bytes", type=int, default=200_000, help="bytes of en.txt to train on")
    parser.add_argument("--finetune-new-only", action="store_true", help="train only the rows not copied")
    parser.add_argument("--finetune-out", type=Path, default=Path("bench/results/transplant_finetune.json"))
    args = parser.parse_args()
    if args.finetune_steps is not None:
        finetune_section(args)
        return
    data = shared_data_dir()
    eval_bytes = 2048 if args.quick else 4096
    files = ("en", "code") if args.quick else ("en", "code", "de", "ru")
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[:eval_bytes] for name in files}
    methods = ("tokenadapt", "mean", "random") if args.quick else METHODS

    model, old_tok = load_model("smollm2")
    aux = AuxEmbedder()
    t0 = time.perf_counter()
    original = evaluate(model, old_tok, texts)
    print("original", {k: round(v["bits_per_byte"], 4) for k, v in original.items()}, f"{time.perf_counter() - t0:.0f}s")

    targets = {"gpt2": lambda: load_tokenizer("gpt2")}
    if not args.quick:
        targets["mistral"] = lambda: load_tokenizer("mistral")
        targets["cl100k"] = lambda: load_tokenizer("cl100k")
        targets["bpe32k-de"] = lambda: train_bpe((data / "de.txt").read_text("utf-8"), 32000)
        en = (data / "en.txt").read_text("utf-8")[:1_500_000]
        targets["supertokens32k-en"] = lambda: learn_supertokens([en], vocab_size=32000, stage1_size=25600)

    results: dict[str, dict] = {}
    for target, make in targets.items():
        t0 = time.perf_counter()
        tok = make()
        vocab = ByteVocab.from_tokenizer(tok)
        entry = {"vocab": len(vocab.pieces), "family": vocab.family, "build_seconds": time.perf_counter() - t0,
                 "bytes_per_token": {n: bytes_per_token(tok, [d]) for n, d in texts.items()}, "methods": {}}
        for method in methods:
            t0 = time.perf_counter()
            new = transplant(model, old_tok, tok, method=method, aux_embedder=aux)
            seconds = time.perf_counter() - t0
            report = new.transplant_report
            scores = summarise(evaluate(new, tok, texts), original)
            estimated = sum(report.by_source.values())
            entry["methods"][method] = {
                **scores, "transplant_seconds": seconds, "copied": report.copied, "estimated": estimated,
                "by_source": report.by_source, "random_fallback": report.random_fallback,
                "random_share": (report.random_fallback + (estimated if method == "random" else 0))
                / max(1, len(vocab.pieces) - report.copied),
                "specials": report.specials,
            }
            print(target, method, {k: round(v["bits_per_byte"], 4) for k, v in scores.items() if isinstance(v, dict)},
                  f"excess {scores['mean_excess_bits_per_byte']:.4f}", f"{seconds:.0f}s", flush=True)
            del new
            gc.collect()
        m = entry["methods"]
        if "mean" in m and "tokenadapt" in m:
            ta, fvt = m["tokenadapt"]["mean_excess_bits_per_byte"], m["mean"]["mean_excess_bits_per_byte"]
            entry["tokenadapt_over_mean_excess"] = ta / fvt
            entry["target_half_of_mean"] = ta <= 0.5 * fvt
            entry["target_not_worse_than_parts"] = all(
                ta <= m[p]["mean_excess_bits_per_byte"] for p in ("local", "global") if p in m)
        results[target] = entry
        save(args, original, results, [], eval_bytes, files, methods, done=False)  # partial results survive a stop

    sweep = []
    if not args.quick:  # T, k and w one at a time around the defaults, GPT-2, en + code
        tok = load_tokenizer("gpt2")
        sub = {k: texts[k] for k in ("en", "code")}
        grid = [dict(temperature=t) for t in (0.1, 0.6)] + [dict(top_k=k) for k in (1, 8)] + \
               [dict(weight=w) for w in (0.0, 0.5, 1.0)]
        for opts in grid:
            new = transplant(model, old_tok, tok, method="tokenadapt", aux_embedder=aux, **opts)
            scores = summarise(evaluate(new, tok, sub), {k: original[k] for k in sub})
            sweep.append({**opts, **scores})
            print("sweep", opts, f"excess {scores['mean_excess_bits_per_byte']:.4f}", flush=True)
            del new
            gc.collect()

    save(args, original, results, sweep, eval_bytes, files, methods, done=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
