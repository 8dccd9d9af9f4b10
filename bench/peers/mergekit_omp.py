"""Run mergekit's tokensurgeon (the peer; `mergekit` from PyPI, LGPL-3.0) and write its converted model.

    runs/peers/mergekit-venv/bin/python bench/peers/mergekit_omp.py BASE DONOR OUT [--k 64] [--only-ids FILE]

Runs in mergekit's own venv (never the project's): BASE and DONOR are HF model
folders (bench/peers/export.py writes them); OUT gets the base model with the
donor's tokenizer, as `mergekit-tokensurgeon BASE DONOR OUT -a omp -k K`
writes it (its defaults otherwise: batches of 512, no prefix or byte matching).
`--only-ids FILE` (a JSON list of donor ids) approximates only those of the
tokens mergekit would approximate; the others are left as the zero rows
mergekit starts from, for the benchmark to fill (its sampled pair). Writes
OUT/peer_report.json: seconds, how many tokens mergekit approximated, and the
options.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("donor")
    parser.add_argument("out", type=Path)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--method", default="omp", help="mergekit's --approximation-method (default omp)")
    parser.add_argument("--only-ids", type=Path, help="JSON list of donor ids: approximate only these")
    args = parser.parse_args()

    import torch
    import mergekit.scripts.tokensurgeon as ts

    only = set(json.loads(args.only_ids.read_text())) if args.only_ids else None
    counts = {"approximated": 0, "skipped_outside_sample": 0}
    compute = ts.compute_new_embeddings

    def restricted(orig_embed, donor_embed, orig_vocab, donor_vocab, target_tokens, *rest, **kw):
        keep = [t for t in target_tokens if only is None or donor_vocab[t] in only]
        counts["approximated"] += len(keep)
        counts["skipped_outside_sample"] += len(target_tokens) - len(keep)
        out = torch.zeros(len(target_tokens), orig_embed.shape[1], dtype=orig_embed.dtype)
        if keep:
            rows = compute(orig_embed, donor_embed, orig_vocab, donor_vocab, keep, *rest, **kw)
            pos = {t: i for i, t in enumerate(target_tokens)}
            out[torch.tensor([pos[t] for t in keep])] = rows.to(out.dtype)
        return out

    ts.compute_new_embeddings = restricted
    t0 = time.perf_counter()
    ts.main.main([args.base, args.donor, str(args.out), "-a", args.method, "-k", str(args.k), "--device", "cpu"],
                 standalone_mode=False)
    seconds = time.perf_counter() - t0
    report = {"tool": "mergekit-tokensurgeon", "method": args.method, "k": args.k, "seconds": seconds,
              "sample": None if only is None else len(only), **counts,
              "torch_threads": torch.get_num_threads()}
    (args.out / "peer_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
