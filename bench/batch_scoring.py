"""Exact bits per byte of many texts at once, against plain-tokenization bits per byte batched the same way.

    python bench/batch_scoring.py [--quick] [--batch 8 32] [--device cpu] [--out bench/results/batch_scoring.json]

SmolLM2-135M (offline GGUF wheel) scores 32 texts of 2 kB (16 from the start
of en.valid.txt, 16 from code.valid.txt, each cut at a character boundary)
two ways, timed in the same process for each batch size B:
- exact: `score_texts(bm, texts, batch_size=B)`, the sum over every canonical
  cover of each text (the trunk before each text's last stable cut in one
  batched forward, the bytes after it through the cover sums);
- plain: `token_bits_per_byte(model, tok, texts, batch_size=B)` with windows
  longer than any text, so each text is one row read after the start token,
  exactly the sequence the exact score's canonical cover is.
Targets: exact/plain throughput (bytes/s) >= 0.5 at B = 8 and 32, and exact
<= plain bits on every text (the exact score adds the other covers' mass; to
1e-6 of the text's bits, the rounding of float32 forwards batched differently). As
the before-figure, `score_bytes` (the streaming path `bits_per_byte` used
before: a byte at a time, model calls for 32 bytes at once) on the first 512
bytes of one text. `--quick`: 4 texts of 256 bytes, B = 2 and 4, 128 bytes
streamed. Needs ../shared/data (or $TOKENSHIFT_DATA); exits with the reason when absent.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from tokenshift.assets import load_model
from tokenshift.bytelevel.corpus import shared_data_dir
from tokenshift.bytelevel.exact import TokenByteModel
from tokenshift.bytelevel.scoring import score_bytes, score_texts, token_bits_per_byte
from tokenshift.results import write_result


def slices(data: bytes, count: int, size: int) -> list[bytes]:
    """`count` consecutive pieces of about `size` bytes, each ending at a character boundary."""
    out, at = [], 0
    for _ in range(count):
        piece = data[at : at + size]
        piece = piece[: len(piece.decode("utf-8", "ignore").encode())]
        out.append(piece)
        at += len(piece)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 texts of 256 bytes (about a minute)")
    parser.add_argument("--batch", type=int, nargs="+", help="batch sizes (default 8 32; --quick 2 4)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (float32 either way)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_scoring.json"))
    args = parser.parse_args()
    count, size, streamed = (4, 256, 128) if args.quick else (32, 2048, 512)
    batches = args.batch or ([2, 4] if args.quick else [8, 32])
    data = shared_data_dir()
    if data is None:
        sys.exit("bench/batch_scoring.py needs ../shared/data (or $TOKENSHIFT_DATA): not found, nothing run")
    texts = (slices((data / "en.valid.txt").read_bytes(), count // 2, size)
             + slices((data / "code.valid.txt").read_bytes(), count - count // 2, size))
    model, tok = load_model("smollm2")
    model = model.to(args.device)
    bm = TokenByteModel(model, tok, device=args.device)
    n_bytes = sum(map(len, texts))
    window = 1 << 20  # longer than any text: one row per text

    runs = {}
    for b_index, batch in enumerate(batches):
        timed = {}
        # alternate which goes first, so drift on a shared machine does not favour one side
        for kind in (("plain", "exact") if b_index % 2 == 0 else ("exact", "plain")):
            calls = bm.forward_calls
            t0 = time.perf_counter()
            if kind == "exact":
                bits = [-b for b in score_texts(bm, texts, batch_size=batch, progress=False)]
            else:
                bits = token_bits_per_byte(model, tok, texts, window=window, progress=False,
                                           batch_size=batch)["text_bits"]
            seconds = time.perf_counter() - t0
            timed[kind] = {"seconds": seconds, "bytes_per_second": n_bytes / seconds, "text_bits": bits,
                           "bits_per_byte": sum(bits) / n_bytes}
            if kind == "exact":
                timed[kind]["forward_calls"] = bm.forward_calls - calls
            print(f"B={batch} {kind}: {n_bytes / seconds:.1f} B/s, {sum(bits) / n_bytes:.4f} bits/byte", flush=True)
        gap = [p - e for p, e in zip(timed["plain"]["text_bits"], timed["exact"]["text_bits"])]
        runs[str(batch)] = {**timed, "throughput_ratio": timed["exact"]["bytes_per_second"]
                            / timed["plain"]["bytes_per_second"],
                            # float32 forwards batched differently round differently: 1e-6 of a text's bits
                            "exact_le_plain_every_text": all(g >= -1e-6 * p for g, p in
                                                             zip(gap, timed["plain"]["text_bits"])),
                            "plain_minus_exact_bits": {"min": min(gap), "max": max(gap), "mean": sum(gap) / len(gap)}}

    t0 = time.perf_counter()
    streamed_bits = -score_bytes(bm, texts[0][:streamed], progress=False)
    stream_seconds = time.perf_counter() - t0
    streaming = {"bytes": streamed, "seconds": stream_seconds, "bytes_per_second": streamed / stream_seconds,
                 "bits_per_byte": streamed_bits / streamed}
    print(f"score_bytes (streaming): {streamed / stream_seconds:.1f} B/s", flush=True)
    metrics = {"batches": runs, "streaming_score_bytes": streaming,
               "targets": {"throughput_ratio_min": 0.5,
                           "met": {b: r["throughput_ratio"] >= 0.5 and r["exact_le_plain_every_text"]
                                   for b, r in runs.items()}}}
    write_result(args.out, "batch_scoring",
                 config={"model": "smollm2 (SmolLM2-135M, offline GGUF wheel)", "quick": args.quick,
                         "texts": count, "bytes_each": size, "bytes": n_bytes,
                         "files": {"en.valid.txt": count // 2, "code.valid.txt": count - count // 2},
                         "batch_sizes": batches, "device": args.device, "threads": torch.get_num_threads(),
                         "streamed_bytes": streamed},
                 metrics=metrics,
                 baseline={"method": "token_bits_per_byte (plain tokenization, each text one row after the start "
                                     "token, batched the same B), same texts, model and process"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
