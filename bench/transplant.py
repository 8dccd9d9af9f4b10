"""Tokenizer transplant on a real model: every method, five target tokenizers, judged in bits per byte.

    python bench/transplant.py [--quick] [--out bench/results/transplant.json]
    python bench/transplant.py --finetune-steps 30     # only the finetune section (transplant_finetune.json)

SmolLM2-135M (offline GGUF) is given each target tokenizer by each method;
bits per byte (plain tokenization, `token_bits_per_byte`) on the first bytes
of ../shared/data {en, code, de, ru}.valid.txt, against the original model on
the same bytes (the baseline, same run). Targets: GPT-2 BPE (50k), Mistral v1
SentencePiece (32k), cl100k (100k), a 32k byte-level BPE trained here on
de.txt, and a 32k supertoken tokenizer learned from en.txt. Also a sweep of
TokenAdapt's T, k and w on GPT-2 (en and code). Target: TokenAdapt's excess
bits per byte <= 1/2 of `mean`'s (FVT) on every target, and no worse than
`local` or `global` alone.

`--finetune-steps N` runs only a separate section (the rest and its results
are left alone): SmolLM2 -> GPT-2 with TokenAdapt, then N steps of
`finetune_embeddings` (embeddings and head only) on the first
`--finetune-bytes` of en.txt, judged on the first 4096 bytes of en and code
valid with the same metric; the baseline is the same run's transplant before
finetuning. Results in `bench/results/transplant_finetune.json`.
"""
from __future__ import annotations

import argparse
import gc
import inspect
import os
import time
from pathlib import Path

from tokenshift.assets import load_model, load_tokenizer
from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.scoring import token_bits_per_byte
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result
from tokenshift.transplant import DONOR_METHODS, METHODS, AuxEmbedder, finetune_embeddings, transplant
from tokenshift.transplant.supertokens import bytes_per_token, learn_supertokens


def train_bpe(text: str, vocab_size: int):
    """A byte-level BPE (GPT-2 pre-tokenizer) trained on `text`, as an HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.splitlines(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")


def evaluate(model, tokenizer, texts: dict[str, bytes]) -> dict[str, dict]:
    return {name: token_bits_per_byte(model, tokenizer, [data], progress=False) for name, data in texts.items()}


def summarise(scores: dict[str, dict], original: dict[str, dict]) -> dict:
    out = {}
    for name, s in scores.items():
        o = original[name]
        out[name] = {
            "bits_per_byte": s["bits_per_byte"], "ratio_to_original": s["bits_per_byte"] / o["bits_per_byte"],
            "excess_bits_per_byte": s["bits_per_byte"] - o["bits_per_byte"],
            "token_perplexity_ratio": s["token_perplexity"] / o["token_perplexity"],
            "bytes_per_token": s["bytes_per_token"],
        }
    out["mean_excess_bits_per_byte"] = sum(v["excess_bits_per_byte"] for v in out.values()) / len(scores)
    return out


def save(args, original, results, sweep, eval_bytes, files, methods, done: bool) -> None:
    metrics = {"original": original, "targets": results, "sweep_gpt2": sweep, "complete": done,
               "targets_met": {t: e.get("target_half_of_mean") for t, e in results.items()}}
    write_result(args.out, "transplant",
                 config={"model": "smollm2 (SmolLM2-135M, offline GGUF)", "aux": "all-MiniLM-L6-v2",
                         "eval_bytes": eval_bytes, "files": list(files), "methods": list(methods),
                         "defaults": {"temperature": 0.3, "top_k": 3, "weight": 0.3, "threshold": 0.0},
                         "quick": args.quick, "metric": "token_bits_per_byte (window 512, after <|endoftext|>/BOS)"},
                 metrics=metrics,
                 baseline={"method": "the original SmolLM2 on the same bytes (excess = bpb_new - bpb_original); "
                                     "FVT mean of subtokens (target: TokenAdapt excess <= 0.5 x mean's)",
                           "reference": "reference TokenAdapt code, SmolLM2 -> GPT-2 + MiniLM: 0.60 of mean's excess "
                                        "(measured side by side in an earlier run of this project; not rerun here)"})


def finetune_section(args) -> None:
    """TokenAdapt to GPT-2, then the embeddings/head recovery finetune; bits per byte before and after."""
    data = shared_data_dir()
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[:4096] for name in ("en", "code")}
    train = (data / "en.txt").read_bytes()[: args.finetune_bytes].decode("utf-8", "ignore")
    t0 = time.perf_counter()
    model, old_tok = load_model("smollm2")
    tok = load_tokenizer("gpt2")
    original = evaluate(model, old_tok, texts)
    new = transplant(model, old_tok, tok, method="tokenadapt", aux_embedder=AuxEmbedder())
    del model
    gc.collect()
    transplanted = summarise(evaluate(new, tok, texts), original)
    print("transplant", {k: round(v["bits_per_byte"], 4) for k, v in transplanted.items() if isinstance(v, dict)},
          flush=True)
    ft = finetune_embeddings(new, tok, [train], args.finetune_steps, batch_size=args.finetune_batch,
                             block_size=args.finetune_block, learning_rate=args.finetune_lr,
                             train_new_rows_only=args.finetune_new_only, device="cpu")
    finetuned = summarise(evaluate(new, tok, texts), original)
    print("finetuned", {k: round(v["bits_per_byte"], 4) for k, v in finetuned.items() if isinstance(v, dict)},
          f"loss {ft['loss_start']:.3f} -> {ft['loss_end']:.3f}, {ft['seconds']:.0f}s", flush=True)
    recovered = {name: 1 - finetuned[name]["excess_bits_per_byte"] / transplanted[name]["excess_bits_per_byte"]
                 for name in texts}
    write_result(args.finetune_out, "transplant_finetune",
                 config={"model": "smollm2 (SmolLM2-135M, offline GGUF)", "target": "gpt2", "method": "tokenadapt",
                         "eval_bytes": 4096, "files": list(texts), "train_text": f"first {args.finetune_bytes} bytes "
                         "of ../shared/data/en.txt", "threads": torch_threads(),
                         "metric": "token_bits_per_byte (window 512, after <|endoftext|>/BOS)",
                         "finetune": {k: v for k, v in ft.items() if k != "losses"}},
                 metrics={"original": original, "transplant": transplanted, "finetuned": finetuned,
                          "excess_recovered": recovered, "losses": ft["losses"],
                          "total_seconds": time.perf_counter() - t0},
                 baseline={"method": "the same run's TokenAdapt transplant before finetuning (excess = bpb - the "
                                     "original SmolLM2's on the same bytes)"})
    print(f"wrote {args.finetune_out}")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# ---------------------------------------------------------------------------------------------------------------
# --pairs: three model pairs, our methods beside the peers (reference TokenAdapt, mergekit tokensurgeon OMP)

PEERS_DIR = Path("runs/peers")  # venvs, the reference's checkout and the peers' outputs; ignored by git
PAIRS = {  # name -> (base model, target tokenizer = the donor's, donor or None)
    "a": ("smollm2", "gpt2", None),
    "b": ("gemma3", "smollm2", "smollm2"),
    "c": ("smollm2", "gemma3", "gemma3"),
}
ROWS = ("mean", "random", "tokenadapt_ref", "tokenadapt", "focus", "default", "mergekit_omp", "omp")
PEER_ROWS = {"tokenadapt_ref": "tokenadapt-venv", "mergekit_omp": "mergekit-venv"}
KNOWN = {"tokenadapt", "local", "global", "mean", "random", "focus", "zett"}


def library_default() -> str:
    """The method `transplant()` uses when none is named (the donor-free default)."""
    return inspect.signature(transplant).parameters["method"].default


def new_ids(old: ByteVocab, new: ByteVocab) -> list[int]:
    """Ids of `new` whose bytes no old token has (the rows a method must estimate; specials excluded)."""
    have = set(p for p in old.pieces if p)
    return [i for i, p in enumerate(new.pieces) if p and p not in have]


def sample_new_rows(old: ByteVocab, new: ByteVocab, texts: dict[str, bytes], extra: int, seed: int = 0) -> list[int]:
    """The fixed sample of new rows for a pair too big for this CPU: every new token the scored texts use
    (canonical encoding) plus `extra` more drawn with `seed` from the rest."""
    import random

    todo = new_ids(old, new)
    used = {i for data in texts.values() for i in new.encode(data, strict=False)}
    inside = sorted(i for i in todo if i in used)
    rest = sorted(set(todo) - used)
    return sorted(inside + random.Random(seed).sample(rest, min(extra, len(rest))))


def start_mapping(model, old_rows, old_vocab: ByteVocab, new_vocab: ByteVocab) -> str:
    """Which old row the converted model gave the scorer's start token (ByteVocab.start_id), found by value."""
    import torch

    s = new_vocab.start_id
    row = model.get_input_embeddings().weight.detach()[s].float()
    same = torch.nonzero((old_rows - row).abs().amax(1) <= 1e-6).flatten().tolist()
    name = new_vocab.special.get(s, repr(new_vocab.pieces[s]))
    if not same:
        return f"{name} -> computed (no old row equals it)"
    j = same[0]
    return f"{name} -> old {old_vocab.special.get(j, repr(old_vocab.pieces[j]))} (id {j})"


def peer_command(row: str, pair: str, base_dir: Path, donor_dir: Path | None, target_dir: Path, out: Path,
                 only: Path | None) -> list[str]:
    from tokenshift.transplant.auxiliary import minilm_dir

    python = str(PEERS_DIR / PEER_ROWS[row] / "bin" / "python")
    if row == "tokenadapt_ref":
        cmd = [python, "bench/peers/tokenadapt_ref.py", str(PEERS_DIR / "tokenadapt" / "src"), str(base_dir),
               str(target_dir), str(minilm_dir()), str(out)]
    else:
        cmd = [python, "bench/peers/mergekit_omp.py", str(base_dir), str(donor_dir), str(out), "--k", "64"]
    return cmd + (["--only-ids", str(only)] if only else [])


def peer_skip_reason(row: str, donor: str | None) -> str | None:
    if row == "mergekit_omp" and donor is None:
        return "mergekit's OMP needs a donor model; pair (a) has none offline"
    venv = PEERS_DIR / PEER_ROWS[row]
    if not (venv / "bin" / "python").exists():
        return f"{venv} is missing: make it with bench/peers/setup.sh"
    if row == "tokenadapt_ref" and not (PEERS_DIR / "tokenadapt" / "src" / "heuristics.py").exists():
        return f"{PEERS_DIR / 'tokenadapt' / 'src'} is missing: a checkout of Tinycompany-AI/tokenadapt (3f7ff1d)"
    return None


def run_peer(row: str, pair: str, base: str, donor: str | None, target: str, only: Path | None,
             reuse_only: bool) -> tuple[Path | None, dict]:
    """The peer's converted model folder and its peer_report.json (runs it in its venv unless already done)."""
    import json
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "peers"))
    import export

    import hashlib

    out = PEERS_DIR / "out" / f"{pair}-{row}"
    digest = hashlib.sha256(only.read_bytes()).hexdigest() if only else "full"
    if (out / "peer_report.json").exists() and json.loads((out / "peer_report.json").read_text()).get(
            "ids_digest", digest) != digest:
        print(f"peer: {out} was made for another sample; running it again", flush=True)
        (out / "peer_report.json").unlink()
    if not (out / "peer_report.json").exists():
        if reuse_only:
            return None, {"skipped": f"--quick runs no peer; {out} is not there yet"}
        models = PEERS_DIR / "models"
        base_dir = export.export_model(base, models)
        donor_dir = export.export_model(donor, models) if donor else None
        target_dir = export.export_tokenizer(target, models)
        cmd = peer_command(row, pair, base_dir, donor_dir, target_dir, out, only)
        print("peer:", " ".join(cmd), flush=True)
        log = out.with_suffix(".log")
        with log.open("w") as f:
            done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        if done.returncode:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            return None, {"skipped": f"the peer failed (exit {done.returncode}; {log}): {tail[0][:200]}"}
        report = json.loads((out / "peer_report.json").read_text())
        (out / "peer_report.json").write_text(json.dumps({**report, "ids_digest": digest}, indent=2) + "\n")
    return out, {**json.loads((out / "peer_report.json").read_text()), "folder": str(out)}


def fill_outside_sample(model, fill, sample: set[int], todo: list[int]) -> None:
    """Rows of the ids in `todo` outside `sample` := `fill` (the same FVT-mean rows for every method of a pair)."""
    import torch

    from tokenshift.transplant.finetune import trainable_matrices

    rest = torch.tensor([i for i in todo if i not in sample])
    with torch.no_grad():
        for matrix in trainable_matrices(model):  # the input rows, and the head's when untied
            matrix[rest] = fill[rest].to(matrix.dtype)


def run_pair(pair: str, args, texts: dict[str, bytes], aux) -> dict:
    import json

    import torch
    from transformers import AutoModelForCausalLM

    base, target, donor = PAIRS[pair]
    model, old_tok = load_model(base)
    tok = load_tokenizer(target)
    old_vocab, vocab = ByteVocab.from_tokenizer(old_tok), ByteVocab.from_tokenizer(tok)
    old_rows = model.get_input_embeddings().weight.detach().float().clone()
    todo = new_ids(old_vocab, vocab)
    t0 = time.perf_counter()
    original = evaluate(model, old_tok, texts)
    print(pair, "original", {k: round(v["bits_per_byte"], 4) for k, v in original.items()},
          f"{time.perf_counter() - t0:.0f}s", flush=True)
    entry = {"base": base, "target": target, "donor": donor, "vocab": len(vocab.pieces), "new_rows": len(todo),
             "copied_by_bytes": sum(1 for p in vocab.pieces if p) - len(todo),
             "start_token": vocab.special.get(vocab.start_id), "original_start_token":
             old_vocab.special.get(old_vocab.start_id), "original": original, "rows": {}}
    sample = None
    only = None
    if pair in args.sample_pairs:
        sample = sample_new_rows(old_vocab, vocab, texts, args.sample_extra)
        only = PEERS_DIR / "out" / f"{pair}-sample.json"
        only.parent.mkdir(parents=True, exist_ok=True)
        # the peers match tokens by string, not bytes: besides the sampled new rows they get every token the texts
        # use, so that a byte-shared token they fail to match is theirs to estimate wherever it is scored
        used = {i for data in texts.values() for i in vocab.encode(data, strict=False)}
        keep = sorted(set(sample) | used)
        only.write_text(json.dumps(keep))
        entry["sample"] = {"rows": len(sample), "of": len(todo), "extra_random": args.sample_extra, "seed": 0,
                           "estimated_by_each_method": len(keep),
                           "rule": "every new token the scored texts use, plus extra_random more drawn with the "
                                   "seed; each method estimates these and every token the texts use; every other "
                                   "row but the specials is the pair's FVT-mean row (a copy for byte-shared tokens) "
                                   "for every method"}
    donor_model = None
    default = library_default()
    fill = None
    extra = [m for m in METHODS + DONOR_METHODS if m not in KNOWN and m not in ROWS]
    rows = [r for r in (args.rows or ROWS + tuple(extra))]
    for row in rows:
        record: dict = {}
        new = None
        if row == "default" and default in entry["rows"]:
            entry["rows"][row] = {"same_as": default}
            continue
        method = default if row == "default" else row
        if row in PEER_ROWS:
            reason = peer_skip_reason(row, donor)
            folder, info = (None, {"skipped": reason}) if reason else run_peer(
                row, pair, base, donor, target, only, args.quick)
            record.update(info)
            if folder is not None:
                new = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
                record["transplant_seconds"] = info["seconds"]
        elif row == "omp":
            if donor is None:
                record["skipped"] = "pair (a) has no donor model offline"
            else:
                if donor_model is None:
                    donor_model, _ = load_model(donor)
                t0 = time.perf_counter()
                try:
                    new = transplant(model, old_tok, tok, method="omp", donor=donor_model)
                except ValueError as err:  # a donor that does not fit the pair; a bug still raises
                    record["skipped"] = f"transplant(method='omp', donor=...) refused: {err}"
                record["transplant_seconds"] = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            new = transplant(model, old_tok, tok, method=method, aux_embedder=aux)
            record["transplant_seconds"] = time.perf_counter() - t0
        if new is not None:
            report = getattr(new, "transplant_report", None)
            if report is not None:
                record.update(method=report.method, copied=report.copied, by_source=report.by_source,
                              random_fallback=report.random_fallback, specials=report.specials)
            if sample is not None:
                if row == "mean":
                    fill = new.get_input_embeddings().weight.detach().float().clone()
                if fill is None:
                    raise SystemExit("the sampled pair needs the 'mean' row first (it fills the unsampled rows)")
                fill_outside_sample(new, fill, set(keep), [i for i, p in enumerate(vocab.pieces) if p])
            record["start_mapping"] = start_mapping(new, old_rows, old_vocab, vocab)
            record.update(summarise(evaluate(new, tok, texts), original))
            print(pair, row, {k: round(v["bits_per_byte"], 4) for k, v in record.items()
                              if isinstance(v, dict) and "bits_per_byte" in v},
                  f"excess {record['mean_excess_bits_per_byte']:.4f}", f"{record.get('transplant_seconds', 0):.0f}s",
                  record["start_mapping"], flush=True)
            del new
            gc.collect()
        else:
            print(pair, row, "skipped:", record.get("skipped"), flush=True)
        entry["rows"][row] = record
        save_pairs(args, texts, {**args.pairs_done, pair: entry}, done=False)
    fvt = entry["rows"].get("mean", {})
    for row, record in entry["rows"].items():
        if "mean_excess_bits_per_byte" in record and "mean_excess_bits_per_byte" in fvt:
            record["over_mean_excess"] = {name: record[name]["excess_bits_per_byte"] / fvt[name]["excess_bits_per_byte"]
                                          for name in texts}
            record["over_mean_excess"]["mean"] = record["mean_excess_bits_per_byte"] / fvt["mean_excess_bits_per_byte"]
    del model, donor_model
    gc.collect()
    return entry


def save_pairs(args, texts: dict[str, bytes], pairs: dict, done: bool) -> None:
    """Write the pairs into args.out, keeping the record's other sections (the five-target run, the sweep)."""
    import json

    record = json.loads(args.out.read_text()) if args.out.exists() else {"config": {}, "metrics": {}, "baseline": {}}
    config = {**record.get("config", {}), "pairs": {
        "pairs": {p: dict(zip(("base", "target", "donor"), PAIRS[p])) for p in pairs},
        "files": list(texts), "eval_bytes": {k: len(v) for k, v in texts.items()}, "rows": list(args.rows or ROWS),
        "sampled": list(args.sample_pairs), "sample_extra": args.sample_extra, "quick": args.quick,
        "aux": "all-MiniLM-L6-v2", "threads": torch_threads(),
        "peers": {"tokenadapt_ref": "Tinycompany-AI/tokenadapt @3f7ff1d, its defaults T=0.3 k=3 w=0.3 threshold 0, "
                                    "aux all-MiniLM-L6-v2 (bench/peers/tokenadapt_ref.py)",
                  "mergekit_omp": "mergekit 0.1.5 tokensurgeon -a omp -k 64 (bench/peers/mergekit_omp.py)"},
        "metric": "token_bits_per_byte (window 512, each window after the new tokenizer's ByteVocab.start_id)"}}
    pairs = {**record.get("metrics", {}).get("pairs", {}), **pairs}  # a run of some pairs keeps the others
    metrics = {**record.get("metrics", {}), "pairs": pairs, "pairs_complete": done or set(pairs) == set(PAIRS)}
    baseline = {**record.get("baseline", {}), "pairs": "each pair's base model with its own tokenizer on the same "
                "bytes (excess = bpb - its bpb); over_mean_excess divides by the same pair's FVT-mean excess"}
    write_result(args.out, "transplant", config=config, metrics=metrics, baseline=baseline,
                 keeps=record if args.out.exists() else None)


def pairs_section(args) -> None:
    data = shared_data_dir()
    if data is None:
        raise SystemExit("bench/transplant.py --pairs needs ../shared/data (en, code, de, ru valid text); not found")
    eval_bytes = 2048 if args.quick else args.eval_bytes
    files = args.files or (("en", "code") if args.quick else ("en", "code", "de", "ru"))
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[:eval_bytes] for name in files}
    if args.quick:
        args.rows = args.rows or ["mean", "random", "tokenadapt", "tokenadapt_ref", "mergekit_omp"]
        pairs = args.pairs or ["a"]
    else:
        pairs = args.pairs or list(PAIRS)
    aux = AuxEmbedder()
    args.pairs_done = {}
    for pair in pairs:
        args.pairs_done[pair] = run_pair(pair, args, texts, aux)
        save_pairs(args, texts, args.pairs_done, done=False)
    save_pairs(args, texts, args.pairs_done, done=set(pairs) == set(PAIRS))
    print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="GPT-2 only, three methods, tiny texts (under a minute "
                                                             "once the MiniLM cache is warm)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/transplant.json"))
    parser.add_argument("--finetune-steps", type=int, help="run only the finetune section, with this many steps")
    parser.add_argument("--finetune-batch", type=int, default=4, help="rows per step (default 4)")
    parser.add_argument("--finetune-block", type=int, default=128, help="tokens per row (default 128)")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    parser.add_argument("--finetune-bytes", type=int, default=200_000, help="bytes of en.txt to train on")
    parser.add_argument("--finetune-new-only", action="store_true", help="train only the rows not copied")
    parser.add_argument("--finetune-out", type=Path, default=Path("bench/results/transplant_finetune.json"))
    parser.add_argument("--pairs", nargs="*", choices=sorted(PAIRS), help="run only the pairs section: these pairs "
                        "(none named: all three), every row, peers included; kept beside the rest of --out")
    parser.add_argument("--rows", nargs="+", choices=ROWS, help="--pairs: only these rows ('mean' first for a "
                        "sampled pair)")
    parser.add_argument("--eval-bytes", type=int, default=16384, help="--pairs: bytes of each valid file (16384)")
    parser.add_argument("--files", nargs="+", choices=("en", "code", "de", "ru"), help="--pairs: only these valid "
                        "files (default all four; --quick en and code)")
    parser.add_argument("--sample-pairs", nargs="*", default=["c"], help="--pairs: pairs run on a fixed sample of "
                        "their new rows (default c)")
    parser.add_argument("--sample-extra", type=int, default=1000, help="--pairs: random new rows added to the "
                        "sample beyond those the texts use (default 1000)")
    args = parser.parse_args()
    if args.pairs is not None:
        pairs_section(args)
        return
    if args.finetune_steps is not None:
        finetune_section(args)
        return
    data = shared_data_dir()
    eval_bytes = 2048 if args.quick else 4096
    files = ("en", "code") if args.quick else ("en", "code", "de", "ru")
    texts = {name: (data / f"{name}.valid.txt").read_bytes()[:eval_bytes] for name in files}
    methods = ("tokenadapt", "mean", "random") if args.quick else METHODS

    model, old_tok = load_model("smollm2")
    aux = AuxEmbedder()
    t0 = time.perf_counter()
    original = evaluate(model, old_tok, texts)
    print("original", {k: round(v["bits_per_byte"], 4) for k, v in original.items()}, f"{time.perf_counter() - t0:.0f}s")

    targets = {"gpt2": lambda: load_tokenizer("gpt2")}
    if not args.quick:
        targets["mistral"] = lambda: load_tokenizer("mistral")
        targets["cl100k"] = lambda: load_tokenizer("cl100k")
        targets["bpe32k-de"] = lambda: train_bpe((data / "de.txt").read_text("utf-8"), 32000)
        en = (data / "en.txt").read_text("utf-8")[:1_500_000]
        targets["supertokens32k-en"] = lambda: learn_supertokens([en], vocab_size=32000, stage1_size=25600)

    results: dict[str, dict] = {}
    for target, make in targets.items():
        t0 = time.perf_counter()
        tok = make()
        vocab = ByteVocab.from_tokenizer(tok)
        entry = {"vocab": len(vocab.pieces), "family": vocab.family, "build_seconds": time.perf_counter() - t0,
                 "bytes_per_token": {n: bytes_per_token(tok, [d]) for n, d in texts.items()}, "methods": {}}
        for method in methods:
            t0 = time.perf_counter()
            new = transplant(model, old_tok, tok, method=method, aux_embedder=aux)
            seconds = time.perf_counter() - t0
            report = new.transplant_report
            scores = summarise(evaluate(new, tok, texts), original)
            estimated = sum(report.by_source.values())
            entry["methods"][method] = {
                **scores, "transplant_seconds": seconds, "copied": report.copied, "estimated": estimated,
                "by_source": report.by_source, "random_fallback": report.random_fallback,
                "random_share": (report.random_fallback + (estimated if method == "random" else 0))
                / max(1, len(vocab.pieces) - report.copied),
                "specials": report.specials,
            }
            print(target, method, {k: round(v["bits_per_byte"], 4) for k, v in scores.items() if isinstance(v, dict)},
                  f"excess {scores['mean_excess_bits_per_byte']:.4f}", f"{seconds:.0f}s", flush=True)
            del new
            gc.collect()
        m = entry["methods"]
        if "mean" in m and "tokenadapt" in m:
            ta, fvt = m["tokenadapt"]["mean_excess_bits_per_byte"], m["mean"]["mean_excess_bits_per_byte"]
            entry["tokenadapt_over_mean_excess"] = ta / fvt
            entry["target_half_of_mean"] = ta <= 0.5 * fvt
            entry["target_not_worse_than_parts"] = all(
                ta <= m[p]["mean_excess_bits_per_byte"] for p in ("local", "global") if p in m)
        results[target] = entry
        save(args, original, results, [], eval_bytes, files, methods, done=False)  # partial results survive a stop

    sweep = []
    if not args.quick:  # T, k and w one at a time around the defaults, GPT-2, en + code
        tok = load_tokenizer("gpt2")
        sub = {k: texts[k] for k in ("en", "code")}
        grid = [dict(temperature=t) for t in (0.1, 0.6)] + [dict(top_k=k) for k in (1, 8)] + \
               [dict(weight=w) for w in (0.0, 0.5, 1.0)]
        for opts in grid:
            new = transplant(model, old_tok, tok, method="tokenadapt", aux_embedder=aux, **opts)
            scores = summarise(evaluate(new, tok, sub), {k: original[k] for k in sub})
            sweep.append({**opts, **scores})
            print("sweep", opts, f"excess {scores['mean_excess_bits_per_byte']:.4f}", flush=True)
            del new
            gc.collect()

    save(args, original, results, sweep, eval_bytes, files, methods, done=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
