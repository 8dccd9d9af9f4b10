"""Training cost per byte of HAT vs ByteLM vs TokenLM at the tiny configs, measured in one process.

    python bench/hat_cost.py [--steps 6] [--rounds 3] [--profile] [--train-kb 300]

Builds the three shipped tiny configs (`models/configs/{hat,bytelm,tokenlm}-tiny.yaml`,
batch and row length as there) on the same training text (`../shared/data`, as
bench/hat.py), warms each up, then times `--steps` optimizer steps (forward,
backward, AdamW) of each model in turn for `--rounds` rounds, alternating the
models so machine noise falls on all of them alike. Reports bytes/s per model
(median over rounds of bytes / seconds), the ratios HAT/ByteLM and HAT/TokenLM,
and the analytic training FLOPs per byte (bench/hat.py's `flops_per_byte`).
`--profile` also prints a torch.profiler table and a cProfile summary of HAT steps.
Prints only; writes nothing.
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

NAMES = ["hat", "bytelm", "tokenlm"]


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
    opt = torch.optim.AdamW(lit.net.parameters(), lr=1e-4)
    return lit, opt, iter(data[stream].train_dataloader())


def steps(lit: LitLM, opt, it, n: int) -> tuple[float, float]:
    """(seconds, bytes) of n training steps."""
    seconds = n_bytes = 0.0
    for _ in range(n):
        batch = next(it)
        t0 = time.perf_counter()
        loss, _, b, _ = lit._losses(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seconds += time.perf_counter() - t0
        n_bytes += float(b)
    return seconds, n_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train-kb", type=float, default=300.0, help="training text per language, KB")
    parser.add_argument("--models", nargs="+", default=NAMES, choices=NAMES)
    parser.add_argument("--profile", action="store_true", help="profile HAT steps (torch.profiler, cProfile)")
    args = parser.parse_args()
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
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for name in order:
            s, b = steps(*models[name], args.steps)
            rates[name].append(b / s)
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
    med = {name: statistics.median(v) for name, v in rates.items()}
    print(f"threads {torch.get_num_threads()}, {args.rounds} rounds x {args.steps} steps; "
          f"valid bytes/word {bpw:.2f}, bytes/token {bpt:.2f}")
    for name in models:
        lit = models[name][0]
        fpb = flops_per_byte(lit, name, bpw, bpt)
        print(f"{name:8s} {lit.net.num_params() / 1e6:5.2f}M params  {med[name]:9.0f} bytes/s "
              f"(rounds: {', '.join(f'{x:.0f}' for x in rates[name])})  {fpb / 1e6:6.2f} MFLOP/byte  "
              f"{med[name] * fpb / 1e9:5.2f} GFLOP/s")
    if "hat" in med:
        for other in ("bytelm", "tokenlm"):
            if other in med:
                ratios = [h / o for h, o in zip(rates["hat"], rates[other])]
                print(f"HAT/{other}: {med['hat'] / med[other]:.3f} (per round: "
                      f"{', '.join(f'{x:.3f}' for x in ratios)})")


if __name__ == "__main__":
    main()
