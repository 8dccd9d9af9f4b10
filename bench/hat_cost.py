"""Training cost per byte of HAT, FLEXITOKENS, ByteLM and TokenLM at the tiny configs, measured in one process.

    python bench/hat_cost.py [--quick] [--steps 6] [--rounds 3] [--profile] [--train-kb 300]
                             [--out bench/results/hat_cost.json]

Builds the shipped tiny configs (`models/configs/{hat,flexitokens,bytelm,tokenlm}-tiny.yaml`,
batch and row length as there) on the same training text (`../shared/data`, as
bench/hat.py), warms each up, then times `--steps` optimizer steps (forward,
backward, AdamW) of each model in turn for `--rounds` rounds, alternating the
models so machine noise falls on all of them alike. Records bytes/s per model
(median over rounds of bytes / seconds), the ratios of HAT and FLEXITOKENS to
ByteLM and TokenLM (targets: HAT >= 1.0x TokenLM, >= 1.8x ByteLM), the analytic
training FLOPs per byte (bench/hat.py's `flops_per_byte`; FLEXITOKENS at the
boundary rate it had in the timed steps) and the GFLOP/s each reaches, so the
gap between design and implementation shows. `--quick`: 2 steps x 2 rounds on
60 KB (a smoke run, to /tmp). `--profile` also prints a torch.profiler table
and a cProfile summary of HAT steps.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hat import LANGS, flops_per_byte, shipped  # noqa: E402  (bench/hat.py)

from tokenshift.models.data import TextData  # noqa: E402
from tokenshift.models.lit import LitLM  # noqa: E402
from tokenshift.models.splitter import split_words  # noqa: E402
from tokenshift.results import write_result  # noqa: E402

NAMES = ["hat", "flexitokens", "bytelm", "tokenlm"]


def make(name: str, data: dict[str, TextData], train_bytes: int):
    config, opts, dopts = shipped(name)
    stream = dopts["stream"]
    if stream not in data:
        data[stream] = TextData(languages=LANGS, stream=stream, seq_len=dopts["seq_len"],
                                batch_size=dopts["batch_size"], vocab_size=dopts.get("vocab_size", 4096),
                                train_bytes=train_bytes, valid_bytes=4096,
                                tokenizer_bytes=min(train_bytes, 1 << 20))
        data[stream].setup("fit")
    L.seed_everything(0)
    lit = LitLM(config, tokenizer=data[stream].tokenizer, **opts)
    lit.set_language_names(data[stream].language_names)  # FLEXITOKENS' per-language priors
    opt = torch.optim.AdamW(lit.net.parameters(), lr=1e-4)
    return lit, opt, iter(data[stream].train_dataloader())


def steps(lit: LitLM, opt, it, n: int) -> tuple[float, float, float]:
    """(seconds, bytes, segment starts) of n training steps (starts: FLEXITOKENS' boundaries, else 0)."""
    seconds = n_bytes = starts = 0.0
    for _ in range(n):
        batch = next(it)
        t0 = time.perf_counter()
        loss, _, b, stats = lit._losses(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        n_bytes += float(b)
        starts += float(stats["boundaries"]) if "boundaries" in stats else 0.0
    return seconds, n_bytes, starts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 steps x 2 rounds on 60 KB, record to /tmp")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train-kb", type=float, default=300.0, help="training text per language, KB")
    parser.add_argument("--models", nargs="+", default=NAMES, choices=NAMES)
    parser.add_argument("--profile", action="store_true", help="profile HAT steps (torch.profiler, cProfile)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/hat_cost.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds, args.warmup, args.train_kb = 2, 2, 1, 60.0
        if args.out == Path("bench/results/hat_cost.json"):
            args.out = Path("/tmp/hat_cost_quick.json")
    torch.set_num_threads(max(1, torch.get_num_threads()))  # as bench/hat.py
    data: dict[str, TextData] = {}
    models = {name: make(name, data, int(args.train_kb * 1024)) for name in args.models}
    for name, (lit, opt, it) in models.items():
        steps(lit, opt, it, args.warmup)
    if args.profile and "hat" in models:
        lit, opt, it = models["hat"]
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            steps(lit, opt, it, 3)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        pr = cProfile.Profile()
        pr.enable()
        steps(lit, opt, it, 3)
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(25)
    rates: dict[str, list[float]] = {name: [] for name in models}
    starts = {name: [0.0, 0.0] for name in models}  # segment starts, bytes
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for name in order:
            s, b, k = steps(*models[name], args.steps)
            rates[name].append(b / s)
            starts[name][0] += k
            starts[name][1] += b
    bpw = 5.0
    if "hat" in models:
        texts = [d for docs in data["bytes"].documents()[1].values() for d in docs]
        raw = "\n\n".join(texts).encode()
        bpw = len(raw) / len(split_words(raw, shipped("hat")[0].max_word_bytes))
    bpt = 4.0
    if "tokenlm" in models:
        tok = models["tokenlm"][0].net.vocab
        texts = [d for docs in data["tokens"].documents()[1].values() for d in docs]
        bpt = sum(len(t.encode()) for t in texts) / sum(len(tok.encode_raw(t.encode())) for t in texts)
    bps = starts["flexitokens"][1] / max(starts["flexitokens"][0], 1.0) if "flexitokens" in models else 5.0
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(f"threads {torch.get_num_threads()}, {args.rounds} rounds x {args.steps} steps; "
          f"valid bytes/word {bpw:.2f}, bytes/token {bpt:.2f}, FLEXITOKENS bytes/segment {bps:.2f}")
    per_model = {}
    for name in models:
        lit = models[name][0]
        fpb = flops_per_byte(lit, name, bpw, bpt, bps)
        per_model[name] = {"params": lit.net.num_params(), "bytes_per_second": med[name], "rounds": rates[name],
                           "flops_per_byte": fpb, "gflops_per_second": med[name] * fpb / 1e9}
        print(f"{name:11s} {lit.net.num_params() / 1e6:5.2f}M params  {med[name]:9.0f} bytes/s "
              f"(rounds: {', '.join(f'{x:.0f}' for x in rates[name])})  {fpb / 1e6:6.2f} MFLOP/byte  "
              f"{med[name] * fpb / 1e9:5.2f} GFLOP/s")
    ratios = {}
    for model in ("hat", "flexitokens"):
        for other in ("bytelm", "tokenlm"):
            if model in med and other in med:
                per_round = [h / o for h, o in zip(rates[model], rates[other])]
                ratios[f"{model}/{other}"] = {"ratio": med[model] / med[other], "per_round": per_round,
                                              "flops_ratio": per_model[other]["flops_per_byte"]
                                              / per_model[model]["flops_per_byte"]}
                print(f"{model}/{other}: {med[model] / med[other]:.3f} (per round: "
                      f"{', '.join(f'{x:.3f}' for x in per_round)}; by FLOPs alone "
                      f"{ratios[f'{model}/{other}']['flops_ratio']:.3f})")
    targets = {"hat/tokenlm_min": 1.0, "hat/bytelm_min": 1.8}
    met = {k: ratios[k.removesuffix("_min")]["ratio"] >= v for k, v in targets.items()
           if k.removesuffix("_min") in ratios}
    write_result(args.out, "hat_cost",
                 config={"configs": {n: f"models/configs/{n}-tiny.yaml" for n in models}, "quick": args.quick,
                         "steps": args.steps, "rounds": args.rounds, "warmup": args.warmup,
                         "train_kb": args.train_kb, "threads": torch.get_num_threads()},
                 metrics={"models": per_model, "ratios": ratios, "bytes_per_word": bpw, "bytes_per_token": bpt,
                          "flexitokens_bytes_per_segment": bps, "targets": {**targets, "met": met}},
                 baseline={"method": "TokenLM and ByteLM (tiny configs) timed in the same process, rounds "
                                     "alternating; FLOPs: 6 x parameters each byte passes through, embeddings out"})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
