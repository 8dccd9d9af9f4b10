"""HAT vs a flat byte transformer vs a BPE transformer, at equal parameters and equal training time.

    python bench/hat.py [--minutes 10] [--quick] [--out bench/results/hat.json] [--plot bench/results/hat.png]

Models: the shipped tiny configs (`models/configs/{hat,bytelm,tokenlm}-tiny.yaml`,
~4M parameters each). Data: `../shared/data` en, code, de, ru, ja (train
split, `--train-mb` per language; validation split, `--valid-kb` per
language); the BPE is trained on the same training text. Each model trains
for `--minutes` of wall-clock (its step budget is set from a timing of its
first steps, so the cosine schedule ends at the budget; validation time is
not counted). Reported, per model:
- validation bits per byte per language at the end, and along the way (bpb vs
  training seconds, plotted), and at equal training FLOPs (each curve read at
  the smallest FLOP total any model reached; FLOPs/byte = 6 x parameters a
  byte goes through: HAT's backbone counts once per word);
- training bytes/s (HAT / ByteLM is the throughput target, >= 1.8x);
- HAT's backbone shortening per language (bytes per word on the validation text);
- robustness: Delta bpb when 5% of characters are perturbed (case flips and typos);
- generation bytes/s with the cache (exact byte sampling for all three; the
  TokenLM through `TokenByteModel`).
The baseline for ratios is ByteLM, measured in the same run.
"""
from __future__ import annotations

import argparse
import copy
import math
import random
import time
from pathlib import Path

import lightning as L
import torch
import yaml

from tokenshift.bytelevel import generate_bytes
from tokenshift.models.bytelm import ByteLMConfig
from tokenshift.models.data import TextData
from tokenshift.models.flexitokens import FlexiTokensConfig
from tokenshift.models.hat import HATConfig
from tokenshift.models.lit import LN2, LitLM
from tokenshift.common.packing import pack
from tokenshift.models.splitter import split_words
from tokenshift.models.tokenlm import TokenLM, TokenLMConfig
from tokenshift.results import write_result

LANGS = ["en", "code", "de", "ru", "ja"]
CONFIGS = Path(__file__).resolve().parents[1] / "models" / "configs"
CLASSES = {"hat": HATConfig, "bytelm": ByteLMConfig, "tokenlm": TokenLMConfig, "flexitokens": FlexiTokensConfig}


def shipped(name: str) -> tuple[object, dict, dict]:
    """(model config, LitLM options, data options) of `models/configs/<name>-tiny.yaml`."""
    spec = yaml.safe_load((CONFIGS / f"{name}-tiny.yaml").read_text())
    model = dict(spec["model"])
    config = CLASSES[name](**model.pop("config")["init_args"])
    return config, model, spec["data"]


def flops_per_byte(lit: LitLM, name: str, bytes_per_word: float, bytes_per_token: float,
                   bytes_per_segment: float = 5.0) -> float:
    """Training FLOPs per byte, 6 x (parameters each byte passes through), embeddings excluded.

    HAT's backbone runs once a word, FLEXITOKENS' once a segment (`bytes_per_segment`, the
    inverse of its boundary rate), TokenLM's whole body once a token."""
    net = lit.net
    count = lambda mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
    if name == "hat":
        per_byte = count([net.encoder, net.decoder, net.context, net.head])
        per_word = count([net.backbone, net.pool])
        return 6 * (per_byte + per_word / bytes_per_word)
    if name == "flexitokens":
        per_byte = count([net.pre, net.predictor, net.post, net.norm, net.head])
        per_segment = count([net.pool_norm, net.down, net.backbone, net.backbone_norm, net.up])
        return 6 * (per_byte + per_segment / bytes_per_segment)
    if name == "bytelm":
        return 6 * count([net.blocks, net.head])
    hf = net.hf
    body = sum(p.numel() for p in hf.parameters()) - hf.get_input_embeddings().weight.numel()
    if hf.config.tie_word_embeddings:
        body += hf.get_input_embeddings().weight.numel()  # the output projection still runs
    return 6 * body / bytes_per_token


def perturb(text: str, rate: float, rng: random.Random) -> str:
    """Change `rate` of the letters: half case flips, half typos (a neighbouring letter of the same text)."""
    letters = [c for c in sorted(set(text)) if c.isalpha()] or ["x"]
    out = []
    for ch in text:
        if ch.isalpha() and rng.random() < rate:
            ch = ch.swapcase() if rng.random() < 0.5 and ch.swapcase() != ch else rng.choice(letters)
        out.append(ch)
    return "".join(out)


@torch.no_grad()
def bpb_of_texts(lit: LitLM, texts: list[str], encode, bos: int, seq_len: int, batch: int = 16) -> float:
    """Bits per byte of whole texts, packed as in validation (every target, end of text included)."""
    inputs, targets = pack([encode(t) for t in texts], bos, bos, seq_len)
    nats = n_bytes = 0.0
    lit.eval()
    for i in range(0, len(inputs), batch):
        b = {"input": torch.from_numpy(inputs[i : i + batch]), "target": torch.from_numpy(targets[i : i + batch])}
        _, s, n, _ = lit._losses(b)
        nats, n_bytes = nats + float(s), n_bytes + float(n)
    return nats / LN2 / n_bytes


def step_seconds(lit: LitLM, dm: TextData, steps: int = 4) -> float:
    """Seconds per optimizer step on real batches (after one warm-up step); the model is then reset."""
    state = copy.deepcopy(lit.net.state_dict())
    opt = torch.optim.AdamW(lit.net.parameters(), lr=1e-4)
    it = iter(dm.train_dataloader())
    times = []
    for i in range(steps + 1):
        batch = next(it)
        t0 = time.perf_counter()
        loss = lit._losses(batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    lit.net.load_state_dict(state)
    return sorted(times)[len(times) // 2]


def interpolate(history: list[dict], flops: float, per_byte: float) -> float | None:
    """Mean validation bpb at `flops` training FLOPs, linear between validations."""
    pts = [(h["seen_bytes"] * per_byte, sum(h["bpb"].values()) / len(h["bpb"])) for h in history]
    for (f0, b0), (f1, b1) in zip(pts, pts[1:]):
        if f0 <= flops <= f1:
            return b0 + (b1 - b0) * (flops - f0) / max(f1 - f0, 1e-9)
    return pts[-1][1] if pts and abs(pts[-1][0] - flops) < 1e-6 * flops else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training wall-clock per model")
    parser.add_argument("--quick", action="store_true", help="a smoke run: seconds per model, small data")
    parser.add_argument("--train-mb", type=float, default=2.0, help="training text per language, MB")
    parser.add_argument("--valid-kb", type=float, default=24.0, help="validation text per language, KB")
    parser.add_argument("--models", nargs="+", default=["hat", "bytelm", "tokenlm"], choices=list(CLASSES))
    parser.add_argument("--out", type=Path, default=Path("bench/results/hat.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench/results/hat.png"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    minutes = 0.1 if args.quick else args.minutes
    train_bytes = int((0.15 if args.quick else args.train_mb) * 2**20)
    valid_bytes = int((2 if args.quick else args.valid_kb) * 1024)
    gen_bytes = 32 if args.quick else 256
    noise_seed = 0

    data: dict[str, TextData] = {}
    results, histories = {}, {}
    for name in args.models:
        config, opts, dopts = shipped(name)
        stream = dopts["stream"]
        if stream not in data:
            seq_len = 256 if args.quick and stream == "bytes" else dopts["seq_len"]
            data[stream] = TextData(languages=LANGS, stream=stream, seq_len=seq_len,
                                    batch_size=8 if args.quick else dopts["batch_size"], vocab_size=dopts.get(
                                        "vocab_size", 4096), train_bytes=train_bytes, valid_bytes=valid_bytes,
                                    tokenizer_bytes=min(train_bytes, 1 << 20))
            data[stream].setup("fit")
        dm = data[stream]
        L.seed_everything(0)
        lit = LitLM(config, tokenizer=dm.tokenizer, **opts)
        per_step = step_seconds(lit, dm)
        max_steps = max(10, int(minutes * 60 / per_step))
        lit.hparams.warmup_steps = min(lit.hparams.warmup_steps, max_steps // 10)
        print(f"{name}: {lit.net.num_params() / 1e6:.2f}M parameters, {per_step:.3f} s/step -> {max_steps} steps")
        trainer = L.Trainer(max_steps=max_steps, max_time={"seconds": minutes * 60 * 2 + 60}, accelerator="cpu",
                            val_check_interval=max(5, max_steps // 8), check_val_every_n_epoch=None,
                            num_sanity_val_steps=0, gradient_clip_val=1.0, logger=False,
                            enable_checkpointing=False, enable_model_summary=False)
        trainer.fit(lit, datamodule=dm)
        if not lit.history or lit.history[-1]["step"] != trainer.global_step:
            trainer.validate(lit, datamodule=dm, verbose=False)
        hist = lit.history
        histories[name] = hist
        valid_docs = {lang: docs for lang, docs in dm.documents()[1].items()}
        if stream == "bytes":
            encode, bos = (lambda t: list(t.encode("utf-8"))), 256
        else:
            vocab = lit.net.vocab
            encode, bos = (lambda t: vocab.encode_raw(t.encode("utf-8"))), lit.net.bos
        clean = {lang: bpb_of_texts(lit, docs, encode, bos, dm.seq_len) for lang, docs in valid_docs.items()}
        rng = random.Random(noise_seed)
        noisy = {lang: bpb_of_texts(lit, [perturb(d, 0.05, rng) for d in docs], encode, bos, dm.seq_len)
                 for lang, docs in valid_docs.items()}
        n_valid = sum(len(d.encode()) for docs in valid_docs.values() for d in docs)
        tokens = sum(len(encode(d)) for docs in valid_docs.values() for d in docs)
        bm = lit.net.byte_model() if isinstance(lit.net, TokenLM) else lit.net.eval()
        prompt = valid_docs["en"][0].encode()[:64]
        t0 = time.perf_counter()
        out = generate_bytes(bm, prompt, max_bytes=gen_bytes, temperature=1.0, seed=0)
        gen_s = time.perf_counter() - t0
        train_s = hist[-1]["time_s"]
        results[name] = {
            "params": lit.net.num_params(),
            "steps": trainer.global_step,
            "train_seconds": train_s,
            "train_bytes": hist[-1]["seen_bytes"],
            "train_bytes_per_s": hist[-1]["seen_bytes"] / max(train_s, 1e-9),
            "valid_bpb": hist[-1]["bpb"],
            "valid_bpb_mean": sum(hist[-1]["bpb"].values()) / len(hist[-1]["bpb"]),
            "valid_bpb_whole_docs": clean,
            "noisy_bpb": noisy,
            "delta_bpb_noise": {lang: noisy[lang] - clean[lang] for lang in clean},
            "bytes_per_token": n_valid / tokens,
            "generation_bytes_per_s": len(out) / gen_s,
            "generated": out.decode("utf-8", "replace"),
            "history": hist,
        }
        print(f"{name}: valid bpb {results[name]['valid_bpb_mean']:.3f}, "
              f"{results[name]['train_bytes_per_s']:.0f} training bytes/s, {len(out) / gen_s:.1f} generated bytes/s")

    shortening = {}
    if "hat" in results:
        cap = shipped("hat")[0].max_word_bytes
        docs = data["bytes"].documents()[1]
        for lang, texts in docs.items():
            raw = "\n\n".join(texts).encode()
            shortening[lang] = len(raw) / len(split_words(raw, cap))
    bpw = sum(shortening.values()) / len(shortening) if shortening else 5.0
    flops = {}
    for name in results:
        config, opts, _ = shipped(name)
        lit = LitLM(config, tokenizer=data["tokens"].tokenizer if name == "tokenlm" else None, **opts)
        flops[name] = flops_per_byte(lit, name, bpw, results[name]["bytes_per_token"])
        results[name]["flops_per_byte"] = flops[name]
    common = min(results[n]["train_bytes"] * flops[n] for n in results)
    for name in results:
        results[name]["valid_bpb_at_equal_flops"] = interpolate(histories[name], common, flops[name])

    metrics = {"models": results, "backbone_bytes_per_word": shortening, "equal_flops": common}
    if "hat" in results and "bytelm" in results:
        metrics["hat_vs_bytelm_throughput"] = (results["hat"]["train_bytes_per_s"]
                                               / results["bytelm"]["train_bytes_per_s"])
    if "hat" in results and "tokenlm" in results:
        h, t = results["hat"], results["tokenlm"]
        metrics["targets"] = {
            "hat_bpb_le_tokenlm_en_de": all(h["valid_bpb"][lang] <= t["valid_bpb"][lang] for lang in ("en", "de")),
            "hat_degrades_less_under_noise": (sum(h["delta_bpb_noise"].values())
                                              < sum(t["delta_bpb_noise"].values())),
            "hat_throughput_ge_1_8x_bytelm": metrics.get("hat_vs_bytelm_throughput", 0) >= 1.8,
        }
    config = {"minutes_per_model": minutes, "quick": args.quick, "languages": LANGS, "train_bytes_per_language":
              train_bytes, "valid_bytes_per_language": valid_bytes, "noise": "5% of letters: case flip or typo",
              "configs": {n: f"models/configs/{n}-tiny.yaml" for n in results},
              "torch_threads": torch.get_num_threads()}
    baseline = {"model": "bytelm", "train_bytes_per_s": results.get("bytelm", {}).get("train_bytes_per_s")}
    write_result(args.out, "hat", config, metrics, baseline)
    plot(histories, args.plot)
    print(f"wrote {args.out} and {args.plot}")


def plot(histories: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {lang for h in histories.values() for rec in h for lang in rec["bpb"]}
    langs = [lang for lang in LANGS if lang in seen] + sorted(seen - set(LANGS))
    fig, axes = plt.subplots(1, len(langs) + 1, figsize=(3.2 * (len(langs) + 1), 3), sharex=True)
    for name, hist in histories.items():
        t = [r["time_s"] / 60 for r in hist]
        axes[0].plot(t, [sum(r["bpb"].values()) / len(r["bpb"]) for r in hist], marker=".", label=name)
        for ax, lang in zip(axes[1:], langs):
            ax.plot(t, [r["bpb"].get(lang, math.nan) for r in hist], marker=".", label=name)
    axes[0].set_title("mean")
    for ax, lang in zip(axes[1:], langs):
        ax.set_title(lang)
    for ax in axes:
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation bits per byte")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
