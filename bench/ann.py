"""An ANN output vocabulary of ~1M tokens at SmolLM2's width: recall and speed against exact top-1.

    python bench/ann.py [--quick] [--entries N] [--out bench/results/ann.json]

Vocabulary: SmolLM2-135M's 49,152 tokens + the most frequent in-word runs of
2..4 of its tokens over ../shared/data/*.txt (`ngram_vocabulary`), up to
`--entries` in all (the corpus holds ~350k distinct in-word runs: the rest are
the most frequent runs across words, as in a multi-word vocabulary); an
n-gram's output row is the mean of its pieces' rows (FVT; the model is tied,
so these are its embedding rows), 576 wide, float32.
Queries: the model's final hidden states at `--queries` positions of the valid
texts (what a decoder would search with). Baseline, in the same run: exact
top-1 by one matrix product per query over all rows (batch 1, as decoding is).
For flat, HNSW, IVF, IVF-PQ and ScaNN (when installed; see `AnnVocabulary` for the exact
inner-product-to-L2 transformations they search with), and the two-stage
`PieceSearch` (exact over the base rows, then only the n-grams that contain a
base token scoring at least the k-th best: exact for mean rows, see its
docstring): build seconds, memory, recall@1 and recall@10 of
the re-scored candidates against exact search (by score: tied rows are
equally right, see `measure`), and queries/s at
batch 1 — the speed ratio to exact is the figure the target names. The exact
baseline is also timed on batches of 64 queries (one matrix-matrix product,
what BLAS is fast at), beside `PieceSearch` on the same batches.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tokenshift.assets import load_model
from tokenshift.bytelevel import ByteVocab
from tokenshift.data import LANGUAGES, shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant.ann import AnnVocabulary
from tokenshift.transplant.dynamic import chunk_text
from tokenshift.transplant.dynamic_eval import ngram_vocabulary
from tokenshift.transplant.piece_search import PieceSearch

KINDS = ["flat", "hnsw", "ivf", "ivfpq", "scann", "pieces"]


def vocabulary(model, tok, entries: int, train_bytes: int) -> tuple[np.ndarray, list[bytes], int, list]:
    """Output rows and byte strings of the base tokens then the n-grams; how many n-grams are in-word;
    and each n-gram's base token ids."""
    vocab = ByteVocab.from_tokenizer(tok)
    rows = model.get_output_embeddings().weight.detach().float()
    texts = []
    for lang in LANGUAGES:
        texts += chunk_text((shared_data_dir() / f"{lang}.txt").read_bytes()[:train_bytes], 4096)
    wanted = max(0, entries - rows.shape[0])
    spell = lambda gram: b"".join(vocab.pieces[i] for i in gram)  # noqa: E731
    grams = ngram_vocabulary(tok, texts, wanted)
    spelled = [spell(g) for g in grams]
    in_words = len(grams)
    if in_words < wanted:  # the corpus has too few distinct in-word runs: top up with runs across words
        across = ngram_vocabulary(tok, texts, wanted - in_words, boundaries="none", exclude=spelled)
        grams += across
        spelled += [spell(g) for g in across]
    print(f"n-gram rows: {in_words} inside words, {len(grams) - in_words} across words", flush=True)
    table = np.empty((rows.shape[0] + len(grams), rows.shape[1]), dtype=np.float32)
    table[: rows.shape[0]] = rows.numpy()
    for k in range(0, len(grams), 65536):  # means of the pieces' rows, in blocks
        block = grams[k : k + 65536]
        width = max(map(len, block))
        ids = torch.tensor([g + (g[0],) * (width - len(g)) for g in block])
        mask = torch.tensor([[1.0] * len(g) + [0.0] * (width - len(g)) for g in block])
        table[rows.shape[0] + k : rows.shape[0] + k + len(block)] = (
            (rows[ids] * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).numpy()
    pieces = [p or b"" for p in vocab.pieces] + spelled
    return table, pieces, in_words, grams


@torch.no_grad()
def queries(model, tok, count: int) -> np.ndarray:
    vocab = ByteVocab.from_tokenizer(tok)
    out = []
    for lang in ("en", "code", "de", "ru"):
        data = (shared_data_dir() / f"{lang}.valid.txt").read_bytes()[:6000]
        ids = [vocab.start_id, *vocab.encode(data)][:512]
        out.append(model.base_model(input_ids=torch.tensor([ids])).last_hidden_state[0].float().numpy())
    q = np.concatenate(out)
    return q[np.random.default_rng(0).choice(len(q), min(count, len(q)), replace=False)]


def exact_topk(table: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Exact top-k scores per query, one query at a time (batch 1), and queries/s."""
    rows = torch.from_numpy(table)
    best = []
    start = time.perf_counter()
    for x in torch.from_numpy(q):
        best.append(torch.topk(rows @ x, k).values.numpy())
    return np.stack(best), len(q) / (time.perf_counter() - start)


def exact_batched(table: np.ndarray, q: np.ndarray, k: int, batch: int = 64) -> float:
    """Queries/s of exact top-k on batches of `batch` queries: one matrix-matrix product each."""
    rows = torch.from_numpy(table)
    start = time.perf_counter()
    for lo in range(0, len(q), batch):
        torch.topk(torch.from_numpy(q[lo : lo + batch]) @ rows.T, k, dim=1)
    return len(q) / (time.perf_counter() - start)


def batched_qps(search, q: np.ndarray, k: int, batch: int = 64) -> float:
    start = time.perf_counter()
    for lo in range(0, len(q), batch):
        search.search(q[lo : lo + batch], k=k)
    return len(q) / (time.perf_counter() - start)


def exact_rate(table: np.ndarray, q: np.ndarray) -> float:
    """Queries/s of exact top-10 at batch 1 on `q`, timed now: each index's ratio uses the rate measured
    beside it, since on a shared machine the load changes within one run."""
    return exact_topk(table, q, 10)[1]


def measure(ann, table: np.ndarray, q: np.ndarray, best: np.ndarray) -> dict:
    """Recall against exact search, by score: rows with equal scores are equally right.

    n-gram rows are means of their pieces' rows, so e.g. "ab"+"c" and "a"+"bc"
    can have equal rows; an id-based recall would count the tie as a miss.
    recall@1: the returned top-1 scores the exact maximum (to 1e-5 relative);
    recall@10: share of the returned 10 scoring at least the exact 10th best.
    """
    start = time.perf_counter()
    got = np.concatenate([ann.search(x[None], k=10)[1] for x in q])
    qps = len(q) / (time.perf_counter() - start)
    scores = np.einsum("qd,qkd->qk", q, table[np.maximum(got, 0)])
    tol = 1e-5 * np.abs(best[:, :1]) + 1e-6
    recall1 = float((scores[:, 0] >= best[:, 0] - tol[:, 0]).mean())
    recall10 = float(((scores >= best[:, 9:10] - tol) & (got >= 0)).mean())
    return {"recall@1": recall1, "recall@10": recall10, "queries_per_s": qps}


def plot(metrics: dict, path: Path) -> None:
    """Recall@1 against speed-up over exact search, one line per index type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for kind in KINDS:
        rows = [r for r in metrics["indexes"] if r["index"] == kind]
        if rows:
            ax.plot([r["speedup_vs_exact"] for r in rows], [r["recall@1"] for r in rows], marker="o", label=kind)
    ax.axhline(0.99, color="grey", lw=0.8, ls=":")
    ax.axvline(10, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set(xlabel="queries/s relative to exact top-1 (batch 1)", ylabel="recall@1",
           title=f"{metrics['entries']:,} output rows x {metrics['width']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60k entries, 100 queries (about a minute)")
    parser.add_argument("--entries", type=int, default=None, help="vocabulary size (default 1,000,000)")
    parser.add_argument("--queries", type=int, default=None, help="query positions (default 500)")
    parser.add_argument("--train-bytes", type=int, default=4_000_000, help="bytes of each *.txt mined for n-grams")
    parser.add_argument("--threads", type=int, default=2, help="FAISS and torch threads")
    parser.add_argument("--indexes", nargs="+", default=KINDS, choices=KINDS,
                        help="which to measure (default all; scann only where it is installed, extra 'scann')")
    parser.add_argument("--keep", action="store_true",
                        help="keep the rows of the --out record for the index kinds not measured now")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ann.json"))
    args = parser.parse_args()
    if shared_data_dir() is None:
        sys.exit("bench/ann.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    entries = args.entries or (60_000 if args.quick else 1_000_000)
    count = args.queries or (100 if args.quick else 500)
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)

    model, tok = load_model("smollm2")
    t0 = time.perf_counter()
    table, pieces, in_words, grams = vocabulary(model, tok, entries, 200_000 if args.quick else args.train_bytes)
    vocab_seconds = time.perf_counter() - t0
    q = queries(model, tok, count)
    best, exact_qps = exact_topk(table, q, 10)
    exact_batch_qps = exact_batched(table, q, 10)
    print(f"{len(table)} entries x {table.shape[1]} ({vocab_seconds:.0f}s); exact top-1: {exact_qps:.1f} queries/s, "
          f"{exact_batch_qps:.1f} in batches of 64", flush=True)
    settings = [("flat", {}), ("hnsw", {"ef_search": 256}), ("hnsw", {"ef_search": 1024}),
                ("hnsw", {"ef_search": 4096}), ("ivf", {"nprobe": 16}), ("ivf", {"nprobe": 64}),
                ("ivf", {"nprobe": 256}), ("ivfpq", {"nprobe": 64}), ("ivfpq", {"nprobe": 256}),
                ("scann", {"nprobe": 32}), ("scann", {"nprobe": 128})]
    candidates = {"flat": 64, "hnsw": 64, "ivf": 64, "ivfpq": 256, "scann": 256}  # quantised: re-score more
    if "scann" in args.indexes and importlib.util.find_spec("scann") is None:
        print("scann is not installed (pip install scann, extra 'scann'): its rows are left out", flush=True)
        args.indexes = [k for k in args.indexes if k != "scann"]
    results, built = [], {}
    for kind, extra in settings:
        if kind not in args.indexes:
            continue
        if kind not in built:
            start = time.perf_counter()
            built[kind] = (AnnVocabulary(table, pieces, index=kind, device="cpu", candidates=candidates[kind]),
                           time.perf_counter() - start)
        ann, seconds = built[kind]
        ann.settings.update(extra)
        ann._tune()
        row = {"index": kind, **extra, "build_seconds": seconds, "memory_mb": ann.memory_bytes() / 2**20,
               **measure(ann, table, q, best)}
        row["exact_queries_per_s"] = exact_rate(table, q[:50])
        row["speedup_vs_exact"] = row["queries_per_s"] / row["exact_queries_per_s"]
        results.append(row)
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    n_base = model.get_output_embeddings().weight.shape[0]
    if "pieces" in args.indexes:
        start = time.perf_counter()
        piece = PieceSearch(table, pieces, grams, n_base)
        row = {"index": "pieces", "exact_bound": piece.exact, "build_seconds": time.perf_counter() - start,
               "memory_mb": (table.nbytes + piece._owners.nbytes + piece._starts.nbytes) / 2**20,
               **measure(piece, table, q, best)}
        row["exact_queries_per_s"] = exact_rate(table, q[:50])
        row["speedup_vs_exact"] = row["queries_per_s"] / row["exact_queries_per_s"]
        row["batch64_queries_per_s"] = batched_qps(piece, q, 10)
        row["batch64_speedup_vs_exact_batch64"] = row["batch64_queries_per_s"] / exact_batch_qps
        results.append(row)
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    kept = None
    if args.keep and args.out.exists():  # earlier rows, each with the exact rate of its own run
        kept = json.loads(args.out.read_text())
        old = [dict(r, measured=r.get("measured", kept["date"]),
                    exact_queries_per_s=r.get("exact_queries_per_s", kept["metrics"]["exact_queries_per_s"]))
               for r in kept["metrics"]["indexes"] if r["index"] not in args.indexes]
        results = old + results
    fits = [r for r in results if r["recall@1"] >= 0.99 and r["speedup_vs_exact"] >= 10 and r["index"] != "flat"]
    n_grams = len(table) - n_base
    metrics = {"entries": len(table), "width": int(table.shape[1]), "queries": len(q),
               "ngram_rows_in_words": in_words, "ngram_rows_across_words": n_grams - in_words,
               "vocabulary_seconds": vocab_seconds, "exact_queries_per_s": exact_qps,
               "exact_batch64_queries_per_s": exact_batch_qps,
               "rows_memory_mb": table.nbytes / 2**20, "indexes": results,
               "target": {"recall@1": 0.99, "speedup": 10, "met": bool(fits),
                          "met_by": [f"{r['index']} {({k: r[k] for k in ('ef_search', 'nprobe') if k in r}) or ''}".strip()
                                     for r in fits]}}
    write_result(args.out, "ann", keeps=kept,
                 config={"model": "SmolLM2-135M (offline wheel), tied output rows", "entries": entries,
                         "queries": count, "candidates_rescored": candidates, "threads": args.threads, "quick": args.quick,
                         "indexes": args.indexes,
                         "ngram_rows": "mean of the pieces' output rows (FVT)"},
                 metrics=metrics,
                 baseline={"exact": "torch matrix product over all rows + topk, one query at a time; and on "
                                    "batches of 64 queries (exact_batch64_queries_per_s)"})
    plot(metrics, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
