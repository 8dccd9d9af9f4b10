"""`tokenshift transplant` and `tokenshift dynamic`: a model's new tokenizer, made and judged.

The work is `transplant.convert.convert` and `transplant.dynamic.evaluate_merges`; these functions check
every option (before any model loads), call them, print the tables and save the output.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from tokenshift.errors import UserError
from tokenshift.options import (MODEL_HELP, check_dir, check_model, count, format_table, load_tokenizer_for, read_text,
                                real, unescape)
from tokenshift.outputs import StagedOutput, _check_out


def add_transplant_arguments(tp: argparse.ArgumentParser) -> None:
    """The options of `tokenshift transplant`; method defaults and choices come from the method registry."""
    from tokenshift.transplant.convert import Recovery
    from tokenshift.transplant.methods import REGISTRY, OmpAuxOptions, OmpDonorOptions, TokenAdaptOptions

    tp.add_argument("--model", required=True, help=MODEL_HELP)
    tp.add_argument("--tokenizer", required=True, help="the new tokenizer: gpt2, mistral, a folder or tokenizer.json")
    tp.add_argument("--method", default="tokenadapt", choices=tuple(REGISTRY), metavar="METHOD",
                    help="how new rows are made (default tokenadapt): " + "; ".join(
                        f"{name}: {m.summary}" + (f" (needs --{m.needs})" if m.needs else "") for name, m in REGISTRY.items()))
    tp.add_argument("--hypernet", help="with --method zett: a hypernetwork folder from `tokenshift train-hypernet`")
    tp.add_argument("--donor", metavar="MODEL", help=f"with --method {'/'.join(n for n, m in REGISTRY.items() if m.needs == 'donor')}: a model that already "
                    "uses the new tokenizer (a Hugging Face model folder, or smollm2/gemma3)")
    tp.add_argument("--out", required=True, type=Path,
                    help="new folder to write the converted model to (--force replaces a previous output only)")
    tp.add_argument("--eval", nargs="+", help="text files (or builtin:en builtin:code): bits per byte before and after")
    tp.add_argument("--eval-bytes", type=count(1), default=32768, help="score the first N bytes of each (default 32768)")
    tp.add_argument("--generate", help="print a short greedy continuation of this prompt by the converted model")
    ta = TokenAdaptOptions()  # the defaults live in the method's options; None here means "the method's default"
    tp.add_argument("--temperature", type=real(0.0, low_open=True),
                    help=f"TokenAdapt (and local/global) T > 0 (default {ta.temperature})")
    tp.add_argument("--top-k", type=count(1), help=f"TokenAdapt (and global) neighbours k (default {ta.top_k})")
    tp.add_argument("--weight", type=real(0.0, 1.0), help=f"TokenAdapt global weight w in [0, 1] (default {ta.weight})")
    tp.add_argument("--k", type=count(1), help=f"OMP's sparsity (default {OmpDonorOptions.k} for omp, "
                    f"{OmpAuxOptions.k} for omp-aux)")
    tp.add_argument("--force", action="store_true",
                    help="replace --out if it holds a previous output of this command (nothing else is ever deleted)")
    tp.add_argument("--finetune", type=count(1), metavar="STEPS",
                    help="then train the embeddings and head only (body frozen) for STEPS steps; --eval reports after")
    tp.add_argument("--distill", type=count(1), metavar="STEPS",
                    help="instead, distil the original model into the converted one for STEPS steps (ALM, "
                         "embeddings and head; the --finetune-* options apply)")
    tp.add_argument("--finetune-text", metavar="FILE", help="text to finetune on (default ../shared/data/en.txt, "
                    "else builtin:en)")
    tp.add_argument("--finetune-bytes", type=count(1), default=1_000_000, help="read its first N bytes (default 1000000)")
    tp.add_argument("--finetune-lr", type=real(0.0, low_open=True), default=Recovery.learning_rate,
                    help=f"peak learning rate (default {Recovery.learning_rate:g})")
    tp.add_argument("--finetune-batch-size", type=count(1), default=Recovery.batch_size,
                    help=f"rows of 256 tokens per step (default {Recovery.batch_size})")
    tp.add_argument("--finetune-new-only", action="store_true", help="train only the rows the transplant did not copy")


def add_dynamic_arguments(dyn: argparse.ArgumentParser) -> None:
    """The options of `tokenshift dynamic`."""
    dyn.add_argument("model", help=MODEL_HELP)
    dyn.add_argument("--text", required=True, nargs="+", help="UTF-8 text files (or builtin:en / builtin:code)")
    dyn.add_argument("--merges", nargs="+", type=count(0), default=[16, 64, 256],
                     help="merge budgets per batch (default 16 64 256; 0, the plain tokenization, is always shown)")
    dyn.add_argument("--batch-size", type=count(1), default=8, help="chunks per batch (merges are learned per batch)")
    dyn.add_argument("--chunk-bytes", type=count(16), default=512, help="bytes per chunk, >= 16 (default 512)")
    dyn.add_argument("--max-bytes", type=count(1), default=16384, help="read the first N bytes of each file (default 16384)")
    dyn.add_argument("--hypernet", help="a trained ZeTT hypernetwork folder for the new tokens' rows (default FVT)")


def _greedy_text(model, tokenizer, prompt: bytes, new_tokens: int) -> bytes:
    """A short greedy continuation with the model's own tokenizer (a smoke test of a converted model)."""
    import torch

    from tokenshift.bytelevel import ByteVocab
    from tokenshift.bytelevel.scoring import document_start_id

    vocab = ByteVocab.from_tokenizer(tokenizer)
    ids = torch.tensor([[document_start_id(vocab), *vocab.encode(prompt)]])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=vocab.eos_id if vocab.eos_id is not None else 0)
    return b"".join(vocab.pieces[i] or b"" for i in out[0, ids.shape[1]:].tolist())


def _finetune_text(args: argparse.Namespace) -> tuple[str, bytes] | None:
    """(name, text) that `--finetune` trains on (checked before any work): --finetune-text, else the
    shared en.txt, else builtin:en (said so)."""
    from tokenshift.bytelevel.corpus import shared_data_dir

    if args.finetune is not None and args.distill is not None:
        raise UserError("--finetune and --distill are two ways to recover: pick one")
    if args.finetune is None and args.distill is None:
        if args.finetune_text or args.finetune_new_only:
            raise UserError("--finetune-text and --finetune-new-only need --finetune STEPS or --distill STEPS")
        return None
    spec = args.finetune_text
    if spec is None:
        data = shared_data_dir()
        if data is not None and (data / "en.txt").is_file():
            spec = str(data / "en.txt")
        else:
            spec = "builtin:en"
            print(f"--{'distill' if args.distill else 'finetune'}: no --finetune-text given and ../shared/data/en.txt "
                  "was not found: training on "
                  "builtin:en (this project's English docs, a few kB); pass --finetune-text FILE for more text")
    name, data = read_text("--finetune-text", spec)
    return name, data[: args.finetune_bytes]


def _method_options(args: argparse.Namespace) -> dict:
    """The --method's options as given (None: not given, the method's default), checked against what the
    method reads before any model loads: --top-k with --method mean is an error, not silently ignored."""
    import re

    from tokenshift.transplant.methods import method_options

    given = {"temperature": args.temperature, "top_k": args.top_k, "weight": args.weight, "k": args.k,
             "donor": args.donor, "hypernet": args.hypernet}
    try:
        method_options(args.method, **given)
    except ValueError as err:  # the library's words, in flags: "donor=" -> "--donor", "method='omp'" -> "--method omp"
        message = re.sub(r"method='([^']+)'", r"--method \1", str(err))
        message = re.sub(r"\b(temperature|top_k|weight|k|donor|hypernet)=", lambda m: "--" + m[1].replace("_", "-")
                         + ("" if m[1] in ("donor", "hypernet") else " "), message)
        raise UserError(message) from None
    return {name: value for name, value in given.items() if value is not None and name != "donor"}  # loaded later


def cmd_transplant(args: argparse.Namespace) -> int:
    """Give a model a new tokenizer; optionally finetune its embeddings and head, and judge it in bits per byte."""
    from tokenshift.assets import load_model
    from tokenshift.transplant import save_transplant
    from tokenshift.transplant.convert import Recovery, convert

    out = _check_out(args.out, args.force)  # everything that can be checked, before any model loads
    texts = {}
    for spec in args.eval or []:
        name, data = read_text("--eval", spec)
        texts[name] = data[: args.eval_bytes]
    finetune = _finetune_text(args)
    options = _method_options(args)
    if args.hypernet:
        check_dir("--hypernet", args.hypernet)
    check_model("--model", args.model, native_ok=False)
    if args.donor:
        check_model("--donor", args.donor, native_ok=False)
    new_tok = load_tokenizer_for("--tokenizer", args.tokenizer)
    if not hasattr(new_tok, "save_pretrained"):
        raise UserError(f"--tokenizer: {args.tokenizer} is not a Hugging Face tokenizer, so the converted model "
                        "could not be saved with it; pass a tokenizer folder (tokenizer.json)")
    recovery = None
    if finetune is not None:
        recovery = Recovery(args.finetune or args.distill, finetune[1], finetune[0], distill=bool(args.distill),
                            batch_size=args.finetune_batch_size, learning_rate=args.finetune_lr,
                            new_rows_only=args.finetune_new_only)
    with StagedOutput(out) as staging:  # a place to write is made (and checked) before the work
        t0 = time.perf_counter()
        model, old_tok = load_model(args.model)
        if args.donor:
            options["donor"], options["donor_tokenizer"] = load_model(args.donor)
        print(f"loaded {args.model}{' and ' + args.donor if args.donor else ''} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        new = convert(model, old_tok, new_tok, args.method, eval_texts=texts, recovery=recovery,
                      label=f"{args.model} -> {args.tokenizer}", log=lambda line: print(line, flush=True), **options)
        options.clear()  # the donor is only needed for the rows
        report = new.transplant_report
        rows = []
        for name, data in texts.items():
            scores = report.eval[name]
            before, last = scores["before"], scores.get("finetuned", scores["after"])
            rows.append([Path(name).name, f"{len(data)}", f"{before['bits_per_byte']:.4f}",
                         f"{scores['after']['bits_per_byte']:.4f}"]
                        + ([f"{last['bits_per_byte']:.4f}"] if "finetuned" in scores else [])
                        + [f"{last['bits_per_byte'] - before['bits_per_byte']:+.4f}",
                           f"{before['bytes_per_token']:.2f} -> {last['bytes_per_token']:.2f}"])
        if rows:
            print()
            print(format_table(rows, ["text", "bytes", "bpb before", "bpb after"]
                                + (["bpb finetuned"] if finetune is not None else []) + ["excess", "bytes/token"]))
        if args.generate:
            prompt = unescape(args.generate).encode("utf-8")
            text = _greedy_text(new, new_tok, prompt, 24)
            print(f"\nconverted model, greedy: {(prompt + text).decode('utf-8', 'replace')!r}")
        save_transplant(new, new_tok, staging.path, into_existing=True)
        staging.commit()
    print(f"\nwrote {args.out} (model, tokenizer, transplant_report.json); reload with "
          f"AutoModelForCausalLM.from_pretrained({str(args.out)!r})")
    return 0


def cmd_dynamic(args: argparse.Namespace) -> int:
    """Batch-level merges on a text: sequence-length reduction and bits per byte per merge budget."""
    from tokenshift.assets import load_model
    from tokenshift.transplant.dynamic import HeuristicEmbedder, chunk_text, evaluate_merges

    check_model("model", args.model, native_ok=False)
    if args.hypernet:
        check_dir("--hypernet", args.hypernet)
    texts = []
    for spec in args.text:
        texts += chunk_text(read_text("--text", spec)[1][: args.max_bytes], args.chunk_bytes)
    model, tok = load_model(args.model)
    if args.hypernet:
        from tokenshift.hypernet import HyperNetwork
        from tokenshift.transplant.dynamic import hypernet_embedder

        embedder = hypernet_embedder(HyperNetwork.from_pretrained(args.hypernet))
    else:
        embedder = HeuristicEmbedder(model, tok, method="mean")
    merges = sorted(set([0, *args.merges]))
    rows = evaluate_merges(model, tok, texts, merges, batch_size=args.batch_size, embedder=embedder)
    table = [[str(r["merges"]), str(r["tokens"]), f"{100 * r['reduction']:.1f}%", f"{r['bits_per_byte']:.4f}",
              f"{100 * r['bpb_cost']:+.2f}%", f"{r['new_tokens_per_batch']:.1f}"] for r in rows]
    print(f"{len(texts)} chunks of ~{args.chunk_bytes} bytes, batches of {args.batch_size}, "
          f"new-token rows from {'the hypernet' if args.hypernet else 'FVT (mean of pieces)'}")
    print(format_table(table, ["merges", "tokens", "shorter", "bits/byte", "bpb cost", "new tokens/batch"]))
    return 0
