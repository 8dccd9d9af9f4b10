"""The `tokenshift` command: a map from subcommand names to plain functions.

Each subcommand is one function taking parsed arguments; `COMMANDS` is the map
(a test checks it against the README). Errors a user can fix (a bad path, an
empty file, a lossy tokenizer) print one line and exit 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class UserError(Exception):
    """An error whose message is the whole story for the user."""


def _format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def cmd_audit(args: argparse.Namespace) -> int:
    """Bytes per token per language, unfairness vs English, unreachable and duplicate tokens."""
    from tokenshift.assets import load_tokenizer
    from tokenshift.bytelevel.audit import audit_vocab
    from tokenshift.bytelevel.vocab import ByteVocab
    from tokenshift.data import default_texts, read_text_bytes, text_name

    paths = args.text or default_texts()
    texts = {}
    for path in paths:
        texts[text_name(path) if text_name(path) not in texts else str(path)] = read_text_bytes(path)
    results = []
    for name in args.tokenizer:
        vocab = ByteVocab.from_tokenizer(load_tokenizer(name), name=name)
        results.append(audit_vocab(vocab, texts))
    names = list(texts)
    rows = [[r.name] + [f"{t.bytes_per_token:.2f}" for t in r.texts] for r in results]
    print("bytes per token (higher = more compression)")
    print(_format_table(rows, ["tokenizer"] + names))
    if "en" in texts:
        rows = [[r.name] + [f"{t.ratio_to_en:.2f}" for t in r.texts] for r in results]
        print("\ntokens relative to English for the same bytes (1.00 = as cheap as English)")
        print(_format_table(rows, ["tokenizer"] + names))
    rows = [
        [r.name, r.family, str(r.size), str(r.special), "yes" if r.lossless else "NO", "yes" if r.dummy_prefix else "no",
         str(r.duplicate_ids), str(r.unreachable)]
        for r in results
    ]
    print("\nvocabulary")
    print(_format_table(rows, ["tokenizer", "family", "size", "special", "lossless", "dummy ▁", "duplicate ids", "unreachable"]))
    for r in results:
        if not r.lossless:
            print(f"  {r.name}: lossy: {r.lossy_reason}")
    if args.json:
        from tokenshift.results import write_result

        metrics = {r.name: r.to_dict() for r in results}
        baseline_name = "gpt2" if "gpt2" in metrics else results[0].name
        write_result(
            args.json,
            "audit",
            config={"tokenizers": args.tokenizer, "texts": {n: str(p) for n, p in zip(names, paths)}},
            metrics=metrics,
            baseline={"tokenizer": baseline_name,
                      "bytes_per_token": {t["name"]: t["bytes_per_token"] for t in metrics[baseline_name]["texts"]}},
        )
        print(f"\nwrote {args.json}")
    return 0


def _unescape(text: str) -> str:
    """`\\n`, `\\t` and `\\\\` typed in a shell argument become the characters."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _byte_model(name: str):
    from tokenshift.assets import load_model
    from tokenshift.bytelevel.exact import TokenByteModel
    from tokenshift.models.base import is_native, load_pretrained

    if is_native(name):  # a HAT or ByteLM folder from `tokenshift train`: a ByteModel itself
        return load_pretrained(name)
    model, tokenizer = load_model(name)
    return TokenByteModel(model, tokenizer)


def cmd_generate(args: argparse.Namespace) -> int:
    """Continue a prompt byte by byte, exactly; the prompt may stop mid-word or mid-character."""
    from tokenshift.bytelevel.sampling import generate_bytes

    prompt = (args.prompt if args.raw else _unescape(args.prompt)).encode("utf-8")
    if len(args.model) > 1 and not args.ensemble:
        raise UserError("several models given: choose how to pool them with --ensemble mixture|product")
    if args.ensemble:
        from tokenshift.bytelevel.ensemble import EnsembleByteModel

        bm = EnsembleByteModel([_byte_model(m) for m in args.model], weights=args.weights, mode=args.ensemble)
    else:
        bm = _byte_model(args.model[0])
    stop = [_unescape(s).encode("utf-8") for s in args.stop or []]
    out = generate_bytes(bm, prompt, max_bytes=args.max_bytes, temperature=args.temperature, top_p=args.top_p,
                         seed=args.seed, stop=stop)
    sys.stdout.buffer.write(prompt + out + b"\n")
    sys.stdout.flush()
    return 0


def cmd_fim(args: argparse.Namespace) -> int:
    """Fill in the middle between a prefix and a suffix (the prefix may stop mid-token)."""
    from tokenshift.bytelevel.fim import fim_complete

    prefix = Path(args.prefix_file).read_bytes()
    suffix = Path(args.suffix_file).read_bytes()
    bm = _byte_model(args.model)
    stop = [_unescape(s).encode("utf-8") for s in args.stop or []]
    middle = fim_complete(bm, prefix, suffix, max_bytes=args.max_bytes, stop=stop, order=args.order,
                          temperature=args.temperature, seed=args.seed)
    sys.stdout.buffer.write(middle if args.middle_only else prefix + middle + suffix)
    sys.stdout.flush()
    return 0


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


def _finetune_text(args: argparse.Namespace) -> bytes | None:
    """The text `--finetune` trains on (checked before any work): --finetune-text, else the shared en.txt."""
    from tokenshift.data import read_text_bytes, shared_data_dir

    if args.finetune is None:
        if args.finetune_text or args.finetune_new_only:
            raise UserError("--finetune-text and --finetune-new-only need --finetune STEPS")
        return None
    if args.finetune <= 0:
        raise UserError(f"--finetune: expected a positive number of training steps, got {args.finetune}")
    if not args.finetune_lr > 0 or args.finetune_batch_size < 1 or args.finetune_bytes < 1:
        raise UserError("--finetune-lr must be > 0, --finetune-batch-size and --finetune-bytes >= 1")
    path = args.finetune_text
    if path is None:
        data = shared_data_dir()
        if data is None:
            raise UserError("--finetune: no --finetune-text given and ../shared/data/en.txt was not found")
        path = data / "en.txt"
    return read_text_bytes(path)[: args.finetune_bytes]


def cmd_transplant(args: argparse.Namespace) -> int:
    """Give a model a new tokenizer; optionally finetune its embeddings and head, and judge it in bits per byte."""
    import shutil
    import tempfile

    from tokenshift.assets import load_model, load_tokenizer
    from tokenshift.bytelevel.scoring import token_bits_per_byte
    from tokenshift.data import read_text_bytes
    from tokenshift.transplant import save_transplant, transplant

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"{out} exists and is not empty; pass --force to replace it")
    texts = {str(f): read_text_bytes(f)[: args.eval_bytes] for f in args.eval or []}  # fail before the work
    finetune_text = _finetune_text(args)
    new_tok = load_tokenizer(args.tokenizer)
    if not hasattr(new_tok, "save_pretrained"):
        raise UserError(f"{args.tokenizer} is not a Hugging Face tokenizer, so the converted model could not be "
                        "saved with it; pass a tokenizer folder (tokenizer.json)")
    if (args.method == "zett") != bool(args.hypernet):
        raise UserError("--method zett needs --hypernet DIR, and --hypernet is only used by --method zett")
    model, old_tok = load_model(args.model)
    new = transplant(model, old_tok, new_tok, method=args.method, temperature=args.temperature, top_k=args.top_k,
                     weight=args.weight, hypernet=args.hypernet)
    report = new.transplant_report
    print(f"{args.model} -> {args.tokenizer} ({args.method}): {report.copied} rows copied, "
          f"{sum(report.by_source.values())} estimated {report.by_source}, {report.random_fallback} random, "
          f"specials {report.specials} ({report.seconds:.0f} s)")
    for name, data in texts.items():  # before finetuning changes `new` in place
        report.eval[name] = {"before": token_bits_per_byte(model, old_tok, [data], progress=False),
                             "after": token_bits_per_byte(new, new_tok, [data], progress=False)}
    if finetune_text is not None:
        from tokenshift.transplant import finetune_embeddings

        print(f"\nfinetuning embeddings and head: {args.finetune} steps on {len(finetune_text)} bytes", flush=True)
        ft = finetune_embeddings(new, new_tok, [finetune_text.decode("utf-8", "ignore")], args.finetune,
                                 batch_size=args.finetune_batch_size, learning_rate=args.finetune_lr,
                                 train_new_rows_only=args.finetune_new_only)
        ft["text"] = str(args.finetune_text) if args.finetune_text else "shared en.txt"
        print(f"finetune: loss {ft['loss_start']:.3f} -> {ft['loss_end']:.3f}, {ft['tokens_seen']} tokens, "
              f"{ft['seconds']:.0f} s")
        for name, data in texts.items():
            report.eval[name]["finetuned"] = token_bits_per_byte(new, new_tok, [data], progress=False)
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
        print(_format_table(rows, ["text", "bytes", "bpb before", "bpb after"]
                            + (["bpb finetuned"] if finetune_text is not None else []) + ["excess", "bytes/token"]))
    if args.generate:
        prompt = _unescape(args.generate).encode("utf-8")
        text = _greedy_text(new, new_tok, prompt, 24)
        print(f"\nconverted model, greedy: {(prompt + text).decode('utf-8', 'replace')!r}")
    staging = Path(tempfile.mkdtemp(prefix=".transplant-", dir=out.parent if out.parent.exists() else None))
    try:  # nothing appears at --out unless everything was written
        save_transplant(new, new_tok, staging)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"\nwrote {out} (model, tokenizer, transplant_report.json); reload with "
          f"AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Exact bits per byte of a text, beside the plain tokenization's bits per byte."""
    from tokenshift.bytelevel.scoring import plain_token_bits, score_bytes
    from tokenshift.data import read_text_bytes

    text = read_text_bytes(args.text)[: args.max_bytes]
    bm = _byte_model(args.model)
    exact = -score_bytes(bm, text, progress=True)
    n = len(text)
    if not hasattr(bm, "core"):  # a native byte model: no tokenization to compare with
        print(f"{args.text}: {n} bytes\n  exact bits/byte {exact / n:.4f}")
        return 0
    plain = plain_token_bits(bm, text)
    print(f"{args.text}: {n} bytes, {plain.tokens} tokens")
    print(f"  exact bits/byte (all canonical covers) {exact / n:.4f}")
    print(f"  plain token bits/byte (one tokenization) {plain.bits / n:.4f}")
    print(f"  difference {(plain.bits - exact) / n:.2e} bits/byte")
    return 0


def cmd_dynamic(args: argparse.Namespace) -> int:
    """Batch-level merges on a text: sequence-length reduction and bits per byte per merge budget."""
    from tokenshift.assets import load_model
    from tokenshift.data import read_text_bytes
    from tokenshift.transplant.dynamic import HeuristicEmbedder, chunk_text, evaluate_merges

    if args.batch_size < 1 or args.chunk_bytes < 16:
        raise UserError("--batch-size must be >= 1 and --chunk-bytes >= 16")
    if any(m < 0 for m in args.merges):
        raise UserError("--merges must be >= 0")
    texts = []
    for path in args.text:
        texts += chunk_text(read_text_bytes(path)[: args.max_bytes], args.chunk_bytes)
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
    print(_format_table(table, ["merges", "tokens", "shorter", "bits/byte", "bpb cost", "new tokens/batch"]))
    return 0


def cmd_train_hypernet(args: argparse.Namespace) -> int:
    """Train a ZeTT hypernetwork with LightningCLI (all arguments go to it; see hypernet/train.py)."""
    from tokenshift.hypernet.train import main as train_main

    return train_main(args.rest)


def cmd_train(args: argparse.Namespace) -> int:
    """Train HAT, ByteLM or TokenLM with LightningCLI (all arguments go to it; see models/train.py)."""
    from tokenshift.models.train import main as train_main

    return train_main(args.rest)


def cmd_segment(args: argparse.Namespace) -> int:
    """Print a text with a FLEXITOKENS model's segment boundaries marked; optionally HTML and PNG views."""
    from tokenshift.models.base import is_native, load_pretrained
    from tokenshift.models.flexitokens import FlexiTokensLM
    from tokenshift.models.segment import bytes_per_segment, render_html, render_png, render_text, segment

    if (args.text is None) == (args.file is None):
        raise UserError("give the text with --text or --file (one of them)")
    text = _unescape(args.text).encode("utf-8") if args.text is not None else args.file.read_bytes()
    if not is_native(args.model):
        raise UserError(f"{args.model} is not a model folder from `tokenshift train`")
    model = load_pretrained(args.model)
    if not isinstance(model, FlexiTokensLM):
        raise UserError(f"{args.model} is a {type(model).__name__}; segment needs a FLEXITOKENS model")
    segments = segment(model, text, args.boundaries)
    mode = args.boundaries or model.config.eval_boundaries
    print(render_text(segments))
    print(f"-- {len(text)} bytes, {len(segments)} segments, {bytes_per_segment(segments):.2f} bytes per segment "
          f"(boundaries: {mode})")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(segments, title=str(args.model)), encoding="utf-8")
        print(f"wrote {args.html}")
    if args.png:
        render_png(segments, args.png)
        print(f"wrote {args.png}")
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "audit": (cmd_audit, "compare tokenizers: bytes per token per language, unreachable/duplicate tokens"),
    "generate": (cmd_generate, "continue a prompt byte by byte with exact byte probabilities"),
    "score": (cmd_score, "exact bits per byte of a text under a tokenized model"),
    "transplant": (cmd_transplant, "give a model a new tokenizer (TokenAdapt and baselines), judged in bits per byte"),
    "fim": (cmd_fim, "fill in the middle between a prefix and a suffix (models with FIM tokens)"),
    "train": (cmd_train, "train a byte-level LM (HAT, ByteLM) or a BPE baseline from a YAML config (LightningCLI)"),
    "train-hypernet": (cmd_train_hypernet, "train a ZeTT hypernetwork that predicts a model's embeddings for any tokenizer"),
    "dynamic": (cmd_dynamic, "dynamic tokenization: batch-level merges, shorter sequences and their bits-per-byte cost"),
    "segment": (cmd_segment, "show where a FLEXITOKENS model puts its segment boundaries (text, HTML, PNG)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tokenshift", description="Free language models from their tokenizer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    audit = sub.add_parser("audit", help=COMMANDS["audit"][1], description=COMMANDS["audit"][1])
    audit.add_argument("tokenizer", nargs="+", help="built-in name (smollm2, gpt2, mistral, cl100k, qwen, gemma3) or path")
    audit.add_argument("--text", nargs="+", type=Path, help="UTF-8 text files (default: ../shared/data/*.valid.txt)")
    audit.add_argument("--json", type=Path, help="also write the results here (bench/results/audit.json format)")
    model_help = "a local Hugging Face model folder, or smollm2 (the offline built-in)"
    gen = sub.add_parser("generate", help=COMMANDS["generate"][1], description=COMMANDS["generate"][1])
    gen.add_argument("model", nargs="+", help=model_help + "; several with --ensemble")
    gen.add_argument("--ensemble", choices=("mixture", "product"), help="pool several models' next-byte distributions")
    gen.add_argument("--weights", nargs="+", type=float, help="ensemble weights (default: equal)")
    gen.add_argument("--prompt", required=True, help="text to continue (\\n and \\t are understood)")
    gen.add_argument("--max-bytes", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--stop", nargs="*", help="stop after any of these strings")
    gen.add_argument("--raw", action="store_true", help="take the prompt literally (no \\n escapes)")
    score = sub.add_parser("score", help=COMMANDS["score"][1], description=COMMANDS["score"][1])
    score.add_argument("model", help=model_help)
    score.add_argument("--text", required=True, type=Path, help="a UTF-8 text file")
    score.add_argument("--max-bytes", type=int, default=2000, help="score the first N bytes (default 2000)")
    tp = sub.add_parser("transplant", help=COMMANDS["transplant"][1], description=COMMANDS["transplant"][1])
    tp.add_argument("--model", required=True, help=model_help)
    tp.add_argument("--tokenizer", required=True, help="the new tokenizer: gpt2, mistral, a folder or tokenizer.json")
    tp.add_argument("--method", default="tokenadapt", choices=("tokenadapt", "local", "global", "mean", "random", "focus", "zett"))
    tp.add_argument("--hypernet", help="with --method zett: a hypernetwork folder from `tokenshift train-hypernet`")
    tp.add_argument("--out", required=True, type=Path, help="folder to write the converted model to")
    tp.add_argument("--eval", nargs="+", type=Path, help="text files: bits per byte before and after")
    tp.add_argument("--eval-bytes", type=int, default=32768, help="score the first N bytes of each (default 32768)")
    tp.add_argument("--generate", help="print a short greedy continuation of this prompt by the converted model")
    tp.add_argument("--temperature", type=float, default=0.3, help="TokenAdapt T (default 0.3)")
    tp.add_argument("--top-k", type=int, default=3, help="TokenAdapt global neighbours k (default 3)")
    tp.add_argument("--weight", type=float, default=0.3, help="TokenAdapt global weight w (default 0.3)")
    tp.add_argument("--force", action="store_true", help="replace --out if it exists")
    tp.add_argument("--finetune", type=int, metavar="STEPS",
                    help="then train the embeddings and head only (body frozen) for STEPS steps; --eval reports after")
    tp.add_argument("--finetune-text", type=Path, metavar="FILE", help="text to finetune on (default ../shared/data/en.txt)")
    tp.add_argument("--finetune-bytes", type=int, default=1_000_000, help="read its first N bytes (default 1000000)")
    tp.add_argument("--finetune-lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    tp.add_argument("--finetune-batch-size", type=int, default=8, help="rows of 256 tokens per step (default 8)")
    tp.add_argument("--finetune-new-only", action="store_true", help="train only the rows the transplant did not copy")
    fim = sub.add_parser("fim", help=COMMANDS["fim"][1], description=COMMANDS["fim"][1])
    fim.add_argument("model", help="a local Hugging Face model folder whose tokenizer has FIM tokens")
    fim.add_argument("--prefix-file", required=True, type=Path, help="the code before the gap")
    fim.add_argument("--suffix-file", required=True, type=Path, help="the code after the gap")
    fim.add_argument("--order", choices=("psm", "spm"), default="psm", help="FIM prompt order (default psm)")
    fim.add_argument("--max-bytes", type=int, default=256)
    fim.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    fim.add_argument("--seed", type=int, default=0)
    fim.add_argument("--stop", nargs="*", help="stop after any of these strings")
    fim.add_argument("--middle-only", action="store_true", help="print only the middle")
    dyn = sub.add_parser("dynamic", help=COMMANDS["dynamic"][1], description=COMMANDS["dynamic"][1])
    dyn.add_argument("model", help=model_help)
    dyn.add_argument("--text", required=True, nargs="+", type=Path, help="UTF-8 text files")
    dyn.add_argument("--merges", nargs="+", type=int, default=[16, 64, 256], help="merge budgets per batch")
    dyn.add_argument("--batch-size", type=int, default=8, help="chunks per batch (merges are learned per batch)")
    dyn.add_argument("--chunk-bytes", type=int, default=512, help="bytes per chunk (default 512)")
    dyn.add_argument("--max-bytes", type=int, default=16384, help="read the first N bytes of each file")
    dyn.add_argument("--hypernet", help="a trained ZeTT hypernetwork folder for the new tokens' rows (default FVT)")
    seg = sub.add_parser("segment", help=COMMANDS["segment"][1], description=COMMANDS["segment"][1])
    seg.add_argument("model", help="a FLEXITOKENS model folder from `tokenshift train`")
    seg.add_argument("--text", help="the text to segment (\\n and \\t are understood)")
    seg.add_argument("--file", type=Path, help="or a UTF-8 text file")
    seg.add_argument("--boundaries", choices=("sampled", "threshold"),
                     help="override the model's eval_boundaries (default: the model's own)")
    seg.add_argument("--html", type=Path, help="also write an HTML page (alternating backgrounds per segment)")
    seg.add_argument("--png", type=Path, help="also write a small PNG")
    sub.add_parser("train", help=COMMANDS["train"][1], description=COMMANDS["train"][1], add_help=False)
    sub.add_parser("train-hypernet", help=COMMANDS["train-hypernet"][1], add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("train", "train-hypernet"):  # these hand their arguments to LightningCLI
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except (UserError, ValueError, TypeError, OSError) as err:
        from tokenshift.assets import AssetError  # noqa: F401  (AssetError is a ValueError)

        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"tokenshift {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
