"""Zero-shot tokenizer transfer with a ZeTT hypernetwork, against TokenAdapt, FVT (mean) and random.

    OMP_NUM_THREADS=1 python bench/hypernet.py --quick    # minutes: a smoke run of both scales, one small target
    OMP_NUM_THREADS=1 python bench/hypernet.py            # full: ~15 + 30 min (scale a) + 45 min (scale b) + eval
    python bench/hypernet.py --scale b --minutes-smollm2 45 --device auto   # one scale: the other is kept in --out

On a CPU shared with other jobs use one thread: with two threads every small
op waited on the busy cores and a hypernet step took 6x longer (measured).

Scale (a), CPU: a small Llama (~7M parameters, untied head, an 8k byte-level
BPE trained here on en+code+de) is trained from scratch for `--minutes-base`,
then its hypernet for `--minutes-hypernet` (sampled vocab 4096). Scale (b):
SmolLM2-135M (offline GGUF, tied) and its hypernet for `--minutes-smollm2`
(sampled vocab 8192 on a CPU). Both runs checkpoint under `--work` and resume
when the script is started again (a finished stage is reused).

Each base is then given each target tokenizer by each method in the same run:
GPT-2 BPE, Mistral v1 SentencePiece, a 32k byte-level BPE trained on de.txt,
and a held-out UnigramLM (16k, EM-trained with `tokenizers` on en+code: not a
sampled tokenizer). Metric: bits per byte of the plain tokenization
(`token_bits_per_byte`) on the first bytes of ../shared/data {en, code, de}
.valid.txt; excess = new - the original model on the same bytes. Target
(issue 7): ZeTT's excess <= TokenAdapt's on every target at scale (a); scale
(b) is reported as is.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from tokenshift.assets import load_model, load_tokenizer
from tokenshift.bytelevel import ByteVocab
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant import AuxEmbedder, transplant

HERE = Path(__file__).resolve().parent
BASELINES = ("tokenadapt", "mean", "random")


def _bench_transplant():
    """bench/transplant.py's helpers (train_bpe, evaluate, summarise): one definition of the metric."""
    spec = importlib.util.spec_from_file_location("bench_transplant", HERE / "transplant.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BT = _bench_transplant()


def train_unigram(text: str, vocab_size: int):
    """An EM-trained byte-level UnigramLM (tokenizers' trainer), as an HF tokenizer: the held-out target."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), max_piece_length=16)
    tok.train_from_iterator(text.splitlines(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


# -- scale (a): a small base LM trained here -----------------------------------------------------


def train_small_base(folder: Path, text: str, minutes: float, vocab_size: int, device: str, seed: int = 0) -> dict:
    """Train (or reuse) a small untied Llama on `text` for `minutes`; saved as an HF folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    done = folder / "train_info.json"
    if done.exists():
        return json.loads(done.read_text())
    tok = BT.train_bpe(text, vocab_size)
    vocab = ByteVocab.from_tokenizer(tok)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(vocab.pieces), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         tie_word_embeddings=False, bos_token_id=vocab.bos_id, eos_token_id=vocab.eos_id)
    model = LlamaForCausalLM(config).to(device)
    ids = torch.tensor(vocab.encode(text.encode("utf-8"), strict=False), dtype=torch.long)
    seq, batch = 128, 16
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    start, step, losses = time.perf_counter(), 0, []
    budget = minutes * 60
    model.train()
    while time.perf_counter() - start < budget:
        frac = (time.perf_counter() - start) / budget
        lr = 2e-3 * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        offsets = torch.randint(0, len(ids) - seq - 1, (batch,), generator=gen)
        x = torch.stack([ids[o : o + seq + 1] for o in offsets]).to(device)
        eot = torch.full((batch, 1), vocab.eos_id, device=device)  # documents are read after <|endoftext|>
        x = torch.cat([eot, x], 1)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 50 == 0:
            print(f"base step {step} loss {sum(losses[-50:]) / 50:.3f} ({time.perf_counter() - start:.0f}s)", flush=True)
    model.eval().cpu().save_pretrained(folder)
    tok.save_pretrained(folder)
    info = {"steps": step, "seconds": time.perf_counter() - start, "final_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
            "params": sum(p.numel() for p in model.parameters()), "vocab": len(vocab.pieces),
            "tokens_seen": step * batch * seq}
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def train_or_reuse_hypernet(model, tok, corpus: list[str], folder: Path, minutes: float, options: dict,
                            device: str) -> dict:
    """Train the hypernet for `minutes` (resuming from folder/checkpoints), or reuse folder/hypernet."""
    from tokenshift.hypernet import HyperNetwork
    from tokenshift.hypernet.train import train_hypernet

    info_path = folder / "train_info.json"
    if info_path.exists() and (folder / "hypernet" / "config.json").exists():
        return {**json.loads(info_path.read_text()), "hypernet": HyperNetwork.from_pretrained(folder / "hypernet")}
    start = time.perf_counter()
    seconds = int(minutes * 60)
    max_time = f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    hn = train_hypernet(model, tok, corpus, folder, steps=options.pop("steps", 1_000_000), max_time=max_time,
                        checkpoint_every=options.pop("checkpoint_every", 50), progress=True,
                        accelerator="gpu" if device.startswith("cuda") else "cpu", **options)
    step = json.loads((folder / "hypernet" / "training.json").read_text())["global_step"]
    info = {"seconds_this_run": time.perf_counter() - start, "steps": step, "options": options}
    info_path.write_text(json.dumps(info, indent=2) + "\n")
    return {**info, "hypernet": hn.cpu()}


# -- evaluation ------------------------------------------------------------------------------------


def compare(model, old_tok, hypernet, targets: dict, texts: dict, aux, original: dict, label: str) -> dict:
    """Every target x (zett + baselines): excess bits per byte over the original, in one run."""
    out = {}
    for target, make in targets.items():
        t0 = time.perf_counter()
        tok = make()
        vocab = ByteVocab.from_tokenizer(tok)
        entry = {"vocab": len(vocab.pieces), "family": vocab.family, "build_seconds": time.perf_counter() - t0,
                 "methods": {}}
        for method in ("zett", *BASELINES):
            t0 = time.perf_counter()
            opts = {"hypernet": hypernet} if method == "zett" else {"aux_embedder": aux}
            new = transplant(model, old_tok, tok, method=method, **opts)
            seconds = time.perf_counter() - t0
            scores = BT.summarise(BT.evaluate(new, tok, texts), original)
            entry["methods"][method] = {**scores, "transplant_seconds": seconds, "copied": new.transplant_report.copied,
                                        "random_fallback": new.transplant_report.random_fallback}
            print(label, target, method, f"excess {scores['mean_excess_bits_per_byte']:+.4f}",
                  {k: round(v["bits_per_byte"], 4) for k, v in scores.items() if isinstance(v, dict)},
                  f"{seconds:.0f}s", flush=True)
            del new
            gc.collect()
        m = entry["methods"]
        entry["zett_excess_minus_tokenadapt"] = (m["zett"]["mean_excess_bits_per_byte"]
                                                 - m["tokenadapt"]["mean_excess_bits_per_byte"])
        entry["target_zett_le_tokenadapt"] = entry["zett_excess_minus_tokenadapt"] <= 0
        out[target] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets, one small German BPE target: minutes")
    parser.add_argument("--scale", choices=("a", "b", "both"), default="both")
    parser.add_argument("--minutes-base", type=float, default=15.0, help="scale (a): base LM training")
    parser.add_argument("--minutes-hypernet", type=float, default=30.0, help="scale (a): hypernet training")
    parser.add_argument("--minutes-smollm2", type=float, default=45.0, help="scale (b): hypernet training")
    parser.add_argument("--eval-bytes", type=int, default=4096, help="bytes of each validation text scored")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the hypernet training follows it)")
    parser.add_argument("--work", type=Path, default=Path("runs/hypernet-bench"), help="checkpoints, bases, hypernets")
    parser.add_argument("--out", type=Path, default=Path("bench/results/hypernet.json"))
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("bench/hypernet.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    if args.quick:
        args.minutes_base, args.minutes_hypernet, args.minutes_smollm2 = 0.75, 0.75, 1.0
        args.eval_bytes = 1024
        args.work = args.work.with_name(args.work.name + "-quick")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    files = ("en", "code", "de")
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[: args.eval_bytes] for name in files}
    train = {name: (data / f"{name}.txt").read_text("utf-8") for name in files}
    cut = 300_000 if args.quick else 2_000_000
    corpus = [train[n][:cut] for n in files]

    if args.quick:  # a small target: TokenAdapt's MiniLM pass over 50k GPT-2 strings alone takes minutes on a CPU
        targets = {"bpe4k-de": lambda: BT.train_bpe(train["de"][:500_000], 4000)}
    else:
        targets = {"gpt2": lambda: load_tokenizer("gpt2")}
        targets["mistral"] = lambda: load_tokenizer("mistral")
        targets["bpe32k-de"] = lambda: BT.train_bpe(train["de"], 32000)
        targets["unigram16k-heldout"] = lambda: train_unigram(train["en"][:1_000_000] + train["code"][:1_000_000], 16000)
    aux = AuxEmbedder()
    config = {"quick": args.quick, "eval_bytes": args.eval_bytes, "files": list(files), "targets": list(targets),
              "methods": ["zett", *BASELINES], "device": device,
              "metric": "token_bits_per_byte (window 512, after <|endoftext|>/BOS); excess = new - original"}
    metrics: dict = {}
    earlier = None  # the record whose other scale this one keeps
    if args.scale != "both" and args.out.exists():  # one scale: keep the other's figures from the record
        other = "scale_b" if args.scale == "a" else "scale_a"
        record = json.loads(args.out.read_text())
        if record["metrics"].get(other):
            metrics[other], earlier = record["metrics"][other], record

    def save(done: bool) -> None:
        write_result(args.out, "hypernet", config=config, metrics={**metrics, "complete": done}, keeps=earlier,
                     baseline={"method": "the original model on the same bytes; TokenAdapt, FVT mean and random "
                                         "transplants of the same targets in the same run",
                               "target": "scale (a): ZeTT excess bits/byte <= TokenAdapt's on every target"})

    if args.scale in ("a", "both"):
        t0 = time.perf_counter()
        base_dir = args.work / "base-small"
        info = train_small_base(base_dir, "\n".join(c[: cut // 2] for c in corpus), args.minutes_base,
                                2048 if args.quick else 8192, device)
        model, tok = load_model(str(base_dir))
        print("scale (a) base:", info, flush=True)
        hn = train_or_reuse_hypernet(model, tok, corpus, args.work / "hn-small", args.minutes_hypernet, {
            "sampled_vocab_size": 1024 if args.quick else 4096, "identity_steps": 30 if args.quick else 300,
            "identity_batch": 256 if args.quick else 1024, "identity_learning_rate": 1e-3, "learning_rate": 3e-4,
            "warmup_steps": 20 if args.quick else 200,
            "batch_size": 8 if args.quick else 16, "text_chars": 1024, "block_size": 128}, device)
        original = BT.evaluate(model, tok, texts)
        metrics["scale_a"] = {"base": info, "hypernet_train": {k: v for k, v in hn.items() if k != "hypernet"},
                              "original": original,
                              "targets": compare(model, tok, hn["hypernet"], targets, texts, aux, original, "(a)"),
                              "seconds": time.perf_counter() - t0}
        metrics["scale_a"]["targets_met"] = {t: e["target_zett_le_tokenadapt"]
                                             for t, e in metrics["scale_a"]["targets"].items()}
        save(done="scale_b" in metrics)
        del model, hn
        gc.collect()

    if args.scale in ("b", "both"):
        t0 = time.perf_counter()
        model, tok = load_model("smollm2")
        hn = train_or_reuse_hypernet(model, tok, corpus[:2], args.work / "hn-smollm2", args.minutes_smollm2, {
            "sampled_vocab_size": 1024 if args.quick else 8192, "identity_steps": 10 if args.quick else 200,
            "identity_batch": 256 if args.quick else 2048, "identity_learning_rate": 3e-4, "learning_rate": 1e-4,
            "warmup_steps": 5 if args.quick else 100, "batch_size": 4, "text_chars": 512, "block_size": 64}, device)
        original = BT.evaluate(model, tok, texts)
        metrics["scale_b"] = {"model": "SmolLM2-135M (offline GGUF)",
                              "hypernet_train": {k: v for k, v in hn.items() if k != "hypernet"}, "original": original,
                              "targets": compare(model, tok, hn["hypernet"], targets, texts, aux, original, "(b)"),
                              "seconds": time.perf_counter() - t0}
        save(done="scale_a" in metrics)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
