"""Exact scoring speed inside one long pre-token vs ordinary English, same model, same run.

    python bench/scoring_speed.py [--quick] [--out bench/results/scoring_speed.json]

`score_bytes` (exact bits under SmolLM2-135M from the offline wheel) on N
bytes of one repeated letter-class character ("\\u0f00", Tibetan OM: one
pre-token of 3-byte letters, spelled one byte token at a time) and on N bytes
of English (../shared/data/en.valid.txt; skipped, with the reason, when it is
absent). Before the fix the repeated character slowed from 26 to 3 bytes/s
(every byte re-encoded the whole run); the target is a bytes/s ratio
(repeated / English) of at least 0.5, and a rate that does not fall with
length (the first third of the run is also timed on its own; each byte of the
run is one token, so its context reaches 6,000 tokens where English reaches
about 1,500, and attention over it is what still grows).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tokenshift.assets import load_model
from tokenshift.bytelevel.corpus import shared_data_dir
from tokenshift.bytelevel.exact import TokenByteModel
from tokenshift.bytelevel.scoring import score_bytes
from tokenshift.results import write_result

LETTER = "\u0f00"


def timed(bm: TokenByteModel, text: bytes) -> dict:
    calls = bm.forward_calls
    t0 = time.perf_counter()
    bits = -score_bytes(bm, text, progress=False)
    seconds = time.perf_counter() - t0
    return {"bytes": len(text), "seconds": seconds, "bytes_per_second": len(text) / seconds,
            "bits_per_byte": bits / len(text), "forward_calls_per_byte": (bm.forward_calls - calls) / len(text)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 bytes each instead of 6,000 (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/scoring_speed.json"))
    args = parser.parse_args()
    size = 300 if args.quick else 6000

    model, tokenizer = load_model("smollm2")
    bm = TokenByteModel(model, tokenizer)
    run = (LETTER * (size // len(LETTER.encode()))).encode()
    results = {"letter_run_first_third": timed(bm, run[: len(run) // 3]), "letter_run": timed(bm, run)}
    print("letter run", results["letter_run"])
    data = shared_data_dir()
    skipped = None
    if data is None:
        skipped = "../shared/data/en.valid.txt not found (set TOKENSHIFT_DATA): English not measured"
        print(skipped)
    else:
        english = (data / "en.valid.txt").read_bytes()[:size]
        english = english[: len(english.decode("utf-8", "ignore").encode())]
        results["english"] = timed(bm, english)
        print("english", results["english"])
    metrics = dict(results)
    if skipped is None:
        metrics["ratio_letter_run_to_english"] = results["letter_run"]["bytes_per_second"] / \
            results["english"]["bytes_per_second"]
    metrics["rate_whole_over_first_third"] = results["letter_run"]["bytes_per_second"] / \
        results["letter_run_first_third"]["bytes_per_second"]
    metrics["targets"] = {"ratio_letter_run_to_english_min": 0.5}
    if skipped:
        metrics["skipped"] = skipped
    print({k: v for k, v in metrics.items() if not isinstance(v, dict)})
    write_result(
        args.out, "scoring_speed",
        config={"model": "smollm2 (SmolLM2-135M, offline GGUF wheel)", "quick": args.quick, "bytes": size,
                "letter": f"U+{ord(LETTER):04X} repeated", "english": "en.valid.txt, first bytes",
                "threads": torch.get_num_threads()},
        metrics=metrics,
        baseline={"method": "score_bytes on English text of the same length, same model and process"},
    )


if __name__ == "__main__":
    main()
