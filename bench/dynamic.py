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

That table leaks: the merges are learned on the text that is scored. The
prompt-compression table (`--part prompt`, and in every full run) does not:
for the first `--docs` documents of each language (en, de, fr, es, ru, ja,
code) the merges are learned on the prompt (the first ~`--prompt-bytes`), the
prompt is read in its merged tokens (new input rows from FVT, TokenAdapt, and
the hypernet when given), and the model is scored on the continuation (the
next ~512 bytes, base tokens, softmax over the base rows only) against the same
continuation after the plainly tokenized prompt. Target (the paper's): mean
over the non-English languages >= 25% shorter prompts at <= 2% continuation
cost, at one merge budget for all languages; en is reported against its ceiling.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from tokenshift.assets import load_model
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant.dynamic import DynamicTokenizer, HeuristicEmbedder, chunk_text, evaluate_merges
from tokenshift.transplant.dynamic_eval import evaluate_prompt_compression

LANGUAGES = ("en", "de", "ru", "code")
PROMPT_LANGUAGES = ("en", "de", "fr", "es", "ru", "ja", "code")
TARGET = {"reduction": 0.25, "bpb_cost": 0.02}


def documents(lang: str) -> list[bytes]:
    """The documents of `lang`.valid.txt (`models.data.split_documents`: blank lines, `# file:` headers for code)."""
    from tokenshift.common.packing import split_documents

    text = (shared_data_dir() / f"{lang}.valid.txt").read_text(encoding="utf-8")
    return [d.encode("utf-8") for d in split_documents(text)]


def summarize_prompts(results: dict, target: dict = TARGET) -> dict:
    """Per row kind: each budget's mean over the non-English languages, the best budget meeting the cost,
    each language's largest reduction within the cost, and whether the target is met."""
    others = [lang for lang in results if lang != "en"]
    kinds = list(next(iter(results.values()))["rows"])
    out: dict = {"non_english": others}
    for kind in kinds:
        budgets = [r["merges"] for r in results[others[0]]["rows"][kind]] if others else []
        means = []
        for b in budgets:
            rows = [next(r for r in results[lang]["rows"][kind] if r["merges"] == b) for lang in others]
            means.append({"merges": b, "reduction": sum(r["reduction"] for r in rows) / len(rows),
                          "bpb_cost": sum(r["bpb_cost"] for r in rows) / len(rows),
                          "max_bpb_cost": max(r["bpb_cost"] for r in rows)})
        ok = [m for m in means if m["bpb_cost"] <= target["bpb_cost"]]
        best = max(ok, key=lambda m: m["reduction"]) if ok else None
        per_lang = {}
        for lang, res in results.items():
            fits = [r for r in res["rows"][kind] if r["bpb_cost"] <= target["bpb_cost"]]
            top = max(fits, key=lambda r: r["reduction"]) if fits else None
            per_lang[lang] = {"reduction": top["reduction"], "merges": top["merges"], "bpb_cost": top["bpb_cost"],
                              "ceiling": res["ceiling"]} if top else None
        tuned = [per_lang[lang]["reduction"] for lang in others if per_lang[lang]]
        out[kind] = {"mean_non_english": means, "best_budget": best, "best_within_cost": per_lang,
                     "mean_best_within_cost_non_english": sum(tuned) / len(others) if others else None,
                     "met": bool(best and best["reduction"] >= target["reduction"])}
    out["target"] = {**target, "met": any(out[k]["met"] for k in kinds),
                     "rule": "one merge budget for all languages: mean prompt reduction over the non-English "
                             "languages >= reduction while their mean continuation bpb cost <= bpb_cost"}
    return out


def prompt_part(model, tok, embedders: dict, languages, docs: int, merges: list, prompt_bytes: int,
                continuation_bytes: int, start: float) -> dict:
    """The leak-free prompt-compression measurement, per language."""
    results = {}
    for lang in languages:
        usable = [d for d in documents(lang) if len(d) >= prompt_bytes + continuation_bytes][:docs]
        results[lang] = evaluate_prompt_compression(model, tok, usable, merges, embedders, prompt_bytes,
                                                    continuation_bytes, progress=False)
        res = results[lang]
        for kind, rows in res["rows"].items():
            print("prompt", lang, kind, f"ceiling {100 * res['ceiling']:.1f}%",
                  [(r["merges"], round(100 * r["reduction"], 1), round(100 * r["bpb_cost"], 2)) for r in rows],
                  f"{time.perf_counter() - start:.0f}s", flush=True)
    return results


def ceiling(tokenizer, texts: list[bytes]) -> float:
    """1 - words / tokens: the reduction when every word is a single token."""
    dyn = DynamicTokenizer(tokenizer, max_merges=0)
    words = tokens = 0
    for data in texts:
        ids, ws = dyn.words(data)
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
    parser.add_argument("--quick", action="store_true",
                        help="en only: 2 kB batches at 3 budgets, 1 prompt at 0 and all merges (about a minute)")
    parser.add_argument("--part", choices=("both", "batch", "prompt"), default="both",
                        help="which table to (re)measure; the other is kept from --out (default both)")
    parser.add_argument("--bytes", type=int, default=None, help="bytes per language (default 8192)")
    parser.add_argument("--merges", type=int, nargs="+", default=None)
    parser.add_argument("--prompt-merges", nargs="+", default=None,
                        help="merge budgets of the prompt table, integers or 'all' (default 0 32 64 128 all)")
    parser.add_argument("--docs", type=int, default=None, help="documents per language in the prompt table (3)")
    parser.add_argument("--prompt-bytes", type=int, default=1536)
    parser.add_argument("--continuation-bytes", type=int, default=512)
    parser.add_argument("--hypernet", type=Path, help="a trained HyperNetwork folder: also score with its rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dynamic.json"))
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from --out")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text())["metrics"]["languages"], args.out.with_suffix(".png"))
        return
    if shared_data_dir() is None:
        sys.exit("bench/dynamic.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    try:
        prompt_merges = [b if b == "all" else int(b) for b in (args.prompt_merges or
                         (["0", "all"] if args.quick else ["0", "32", "64", "128", "all"]))]
    except ValueError:
        sys.exit(f"--prompt-merges takes integers >= 0 or 'all', got {' '.join(args.prompt_merges)}")
    old = None
    if args.part != "both":
        old = json.loads(args.out.read_text()) if args.out.is_file() else None
        keep = "languages" if args.part == "prompt" else "prompt_compression"
        if args.part == "prompt" and (old is None or keep not in old.get("metrics", {})):
            sys.exit(f"--part prompt keeps the batch table of {args.out}, which has none; run with --part both")
    torch.set_num_threads(args.threads)
    nbytes = args.bytes or (2048 if args.quick else 8192)
    merges = args.merges or ([0, 16, 128] if args.quick else [0, 8, 16, 32, 64, 128, 256, 1024])
    languages = ("en",) if args.quick else LANGUAGES
    batch_sizes = (8,) if args.quick else (8, 32)
    docs = args.docs or (1 if args.quick else 3)

    model, tok = load_model("smollm2")
    embedders = {"fvt": HeuristicEmbedder(model, tok, method="mean")}
    if not args.quick:
        from tokenshift.transplant.auxiliary import AuxEmbedder

        embedders["tokenadapt"] = HeuristicEmbedder(model, tok, method="tokenadapt", aux_embedder=AuxEmbedder())
    hypernet_note = None
    if args.hypernet:
        from tokenshift.hypernet import HyperNetwork
        from tokenshift.transplant.dynamic import hypernet_embedder

        embedders["hypernet"] = hypernet_embedder(HyperNetwork.from_pretrained(args.hypernet))
    else:
        hypernet_note = "hypernet rows skipped: no --hypernet folder given (train one with `tokenshift train-hypernet`)"
        print(hypernet_note, flush=True)

    metrics: dict = {}
    config: dict = {"model": "SmolLM2-135M (offline wheel)", "quick": args.quick,
                    "hypernet": str(args.hypernet) if args.hypernet else None}
    start = time.perf_counter()
    if args.part in ("both", "batch"):
        metrics.update(batch_part(model, tok, embedders, languages, nbytes, merges, batch_sizes, start))
        config.update({"bytes_per_language": nbytes, "chunk_bytes": 512, "merges": merges,
                       "batch_sizes": list(batch_sizes), "embedders": list(embedders),
                       "boundaries": "words (the tokenizer's pre-tokens)"})
    if args.part in ("both", "prompt"):
        plangs = ("en",) if args.quick else PROMPT_LANGUAGES
        t0 = time.perf_counter()
        results = prompt_part(model, tok, embedders, plangs, docs, prompt_merges, args.prompt_bytes,
                              args.continuation_bytes, start)
        metrics["prompt_compression"] = {"languages": results, "summary": summarize_prompts(results),
                                         "seconds": time.perf_counter() - t0}
        config["prompt_compression"] = {
            "languages": list(plangs), "documents_per_language": docs, "prompt_bytes": args.prompt_bytes,
            "continuation_bytes": args.continuation_bytes, "merges": prompt_merges, "embedders": list(embedders),
            "hypernet_skipped": hypernet_note, "threads": args.threads,
            "documents": "the first documents of each ../shared/data/<lang>.valid.txt holding prompt + continuation",
            "tokenadapt_aux": "all-MiniLM-L6-v2 (an English embedder) for every language",
            "command": "python bench/dynamic.py" + (" --quick" if args.quick else "")
                       + (f" --part {args.part}" if args.part != "both" else "")
                       + (f" --docs {args.docs}" if args.docs else "")
                       + (f" --prompt-bytes {args.prompt_bytes}" if args.prompt_bytes != 1536 else "")
                       + (f" --prompt-merges {' '.join(map(str, prompt_merges))}" if args.prompt_merges else "")
                       + (f" --threads {args.threads}" if args.threads != 1 else "")
                       + (f" --hypernet {args.hypernet}" if args.hypernet else "")}
    kept = None  # the earlier record whose table this one keeps
    if old is not None and args.part == "prompt":  # keep the batch table (and its settings) from --out
        kept = old
        config = {**{k: v for k, v in old["config"].items() if k != "prompt_compression"},
                  "batch_table_date": old["config"].get("batch_table_date", old.get("date")),
                  "prompt_compression": config["prompt_compression"]}
        metrics = {**old["metrics"], **metrics}
    elif old is not None and "prompt_compression" in old.get("metrics", {}):  # --part batch: keep the prompt table
        kept = old
        config["prompt_compression"] = old["config"].get("prompt_compression")
        metrics["prompt_compression"] = old["metrics"]["prompt_compression"]
    baseline = {"merges=0": "the plain model on its own tokenization, same batches (bpb_cost is relative to it)",
                "prompt_compression": "the same continuation scored after the plainly tokenized prompt"}
    write_result(args.out, "dynamic", config=config, metrics=metrics, baseline=baseline, keeps=kept)
    if "languages" in metrics:
        plot(metrics["languages"], args.out.with_suffix(".png"))
    print(f"wrote {args.out}" + (f" and {args.out.with_suffix('.png')}" if "languages" in metrics else ""))
    if "prompt_compression" in metrics:
        summary = metrics["prompt_compression"]["summary"]
        for kind in embedders:
            best = summary[kind]["best_budget"]
            print(f"prompt target ({kind}):", "met" if summary[kind]["met"] else "not met",
                  f"best one budget within cost: {best}" if best else "no budget within cost")


def batch_part(model, tok, embedders: dict, languages, nbytes: int, merges: list, batch_sizes, start: float) -> dict:
    """Today's table: merges learned on each batch of chunks, the batch scored in its own vocabulary (leaks)."""
    results: dict = {}
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
    return {"languages": results, "best_within_2pct": best, "seconds": time.perf_counter() - start,
            "target": {"reduction": 0.25, "bpb_cost": 0.02,
                       "met_en": bool(best.get("en") and best["en"]["reduction"] >= 0.25)}}


if __name__ == "__main__":
    main()
