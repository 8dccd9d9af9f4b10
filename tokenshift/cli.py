"""The `tokenshift` command: a map from subcommand names to plain functions.

Each subcommand is one function taking parsed arguments; `COMMANDS` is the map
(a test checks it against the README). Errors a user can fix (a bad path, an
empty file, a lossy tokenizer, a count that is not positive) print one line and
exit 2, no traceback, and are found before any model is loaded: every option is
checked first (`tokenshift.options`: argparse types for numbers, `check_*` for
paths and models). Only the project's user-facing error types are turned into that line
(`UserError`, `ValueError` with its `AssetError`, `OSError`); anything else is a
bug and shows its traceback.

The commands that convert a model (`transplant`, `dynamic`) live in
`tokenshift.convert_commands`; `transplant --out` is written whole or not at all
(`tokenshift.outputs`: a hidden staging folder renamed over `--out`; `--force`
replaces only a previous output of this tool).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenshift.errors import UserError  # noqa: E402  (re-exported: the CLI's one-line errors)
from tokenshift.options import (MODEL_HELP, Parser, add_decoding_options, check_file, check_model,  # noqa: E402
                                check_writable_file, count, format_table, load_tokenizer_for, read_text, real,
                                stop_strings, unescape)
from tokenshift.convert_commands import (add_dynamic_arguments, add_transplant_arguments, cmd_dynamic,  # noqa: E402
                                         cmd_transplant)


def cmd_audit(args: argparse.Namespace) -> int:
    """Bytes per token per language, unfairness vs English, unreachable and duplicate tokens."""
    from tokenshift.bytelevel.audit import audit_vocab
    from tokenshift.bytelevel.corpus import BUILTIN_PREFIX, LANGUAGES, shared_data_dir
    from tokenshift.bytelevel.vocab import ByteVocab
    from tokenshift.data import text_name

    check_writable_file("--json", args.json)
    specs = [str(t) for t in args.text or []]
    if not specs:
        folder = shared_data_dir()
        if folder is not None:
            specs = [str(folder / f"{lang}.valid.txt") for lang in LANGUAGES]
        else:
            specs = [BUILTIN_PREFIX + "en", BUILTIN_PREFIX + "code"]
            print("no --text given and ../shared/data was not found: auditing on builtin:en (this project's "
                  "English docs) and builtin:code (Python's standard library); pass --text FILE... for others\n")
    texts: dict[str, bytes] = {}
    for spec in specs:
        name, data = read_text("--text", spec)
        short = name[len(BUILTIN_PREFIX):] if name.startswith(BUILTIN_PREFIX) else text_name(name)
        texts[short if short not in texts else name] = data
    results = []
    for name in args.tokenizer:
        vocab = ByteVocab.from_tokenizer(load_tokenizer_for("tokenizer", name), name=name)
        results.append(audit_vocab(vocab, texts))
    names = list(texts)
    rows = [[r.name] + [f"{t.bytes_per_token:.2f}" for t in r.texts] for r in results]
    print("bytes per token (higher = more compression)")
    print(format_table(rows, ["tokenizer"] + names))
    if "en" in texts:
        rows = [[r.name] + [f"{t.ratio_to_en:.2f}" for t in r.texts] for r in results]
        print("\ntokens relative to English for the same bytes (1.00 = as cheap as English)")
        print(format_table(rows, ["tokenizer"] + names))
    rows = [
        [r.name, r.family, str(r.size), str(r.special), "yes" if r.lossless else "NO", "yes" if r.dummy_prefix else "no",
         str(r.duplicate_ids), str(r.unreachable)]
        for r in results
    ]
    print("\nvocabulary")
    print(format_table(rows, ["tokenizer", "family", "size", "special", "lossless", "dummy ▁", "duplicate ids", "unreachable"]))
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
            config={"tokenizers": args.tokenizer, "texts": dict(zip(names, specs))},
            metrics=metrics,
            baseline={"tokenizer": baseline_name,
                      "bytes_per_token": {t["name"]: t["bytes_per_token"] for t in metrics[baseline_name]["texts"]}},
        )
        print(f"\nwrote {args.json}")
    return 0


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

    prompt = (args.prompt if args.raw else unescape(args.prompt)).encode("utf-8")
    for name in args.model:
        check_model("model", name)
    if len(args.model) > 1 and not args.ensemble:
        raise UserError("several models given: choose how to pool them with --ensemble mixture|product")
    if args.weights is not None:
        if not args.ensemble:
            raise UserError("--weights: only used with --ensemble mixture|product")
        if len(args.weights) != len(args.model):
            raise UserError(f"--weights: {len(args.weights)} weights for {len(args.model)} models; give one per model")
        if not sum(args.weights) > 0:
            raise UserError("--weights: at least one weight must be positive")
    stop = stop_strings(args)
    if args.ensemble:
        from tokenshift.bytelevel.ensemble import EnsembleByteModel

        bm = EnsembleByteModel([_byte_model(m) for m in args.model], weights=args.weights, mode=args.ensemble)
    else:
        bm = _byte_model(args.model[0])
    out = generate_bytes(bm, prompt, max_bytes=args.max_bytes, temperature=args.temperature, top_p=args.top_p,
                         seed=args.seed, stop=stop)
    sys.stdout.buffer.write(prompt + out + b"\n")
    sys.stdout.flush()
    return 0


FIM_RECIPE = ("tokenshift train --config models/configs/tokenlm-code-fim-tiny.yaml trains a small code model with "
              "them (then pass its runs/tokenlm-code-fim/model folder)")


def _check_fim_tokens(name: str) -> None:
    """The model's tokenizer has FIM tokens: read from the tokenizer alone, before any weights load."""
    from tokenshift.bytelevel.fim import FIM_NAMES, fim_tokens
    from tokenshift.bytelevel.vocab import ByteVocab

    vocab = ByteVocab.from_tokenizer(load_tokenizer_for("model", name), name=name)
    try:
        fim_tokens(vocab)
    except ValueError:
        raise UserError(f"model: {name!r} has no fill-in-the-middle tokens (looked for "
                        f"{', '.join('/'.join(n) for n in FIM_NAMES)}); {FIM_RECIPE}; for left-to-right completion "
                        f"use: tokenshift generate {name} --prompt TEXT") from None


def cmd_fim(args: argparse.Namespace) -> int:
    """Fill in the middle between a prefix and a suffix (the prefix may stop mid-token)."""
    from tokenshift.bytelevel.fim import fim_complete

    check_model("model", args.model, native_ok=False)
    prefix = check_file("--prefix-file", args.prefix_file).read_bytes()
    suffix = check_file("--suffix-file", args.suffix_file).read_bytes()
    _check_fim_tokens(args.model)
    stop = stop_strings(args)
    bm = _byte_model(args.model)
    middle = fim_complete(bm, prefix, suffix, max_bytes=args.max_bytes, stop=stop, order=args.order,
                          temperature=args.temperature, seed=args.seed)
    sys.stdout.buffer.write(middle if args.middle_only else prefix + middle + suffix)
    sys.stdout.flush()
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Exact bits per byte of a text, beside the plain tokenization's bits per byte."""
    from tokenshift.bytelevel.exact import TokenByteModel
    from tokenshift.bytelevel.scoring import plain_token_bits, score_texts

    check_model("model", args.model)
    name, text = read_text("--text", args.text)
    text = text[: args.max_bytes]
    bm = _byte_model(args.model)
    exact = -score_texts(bm, [text], progress=True)[0]
    n = len(text)
    if not isinstance(bm, TokenByteModel):  # a native byte model: no tokenization to compare with
        print(f"{name}: {n} bytes\n  exact bits/byte {exact / n:.4f}")
        return 0
    plain = plain_token_bits(bm, text)
    print(f"{name}: {n} bytes, {plain.tokens} tokens")
    print(f"  exact bits/byte (all canonical covers) {exact / n:.4f}")
    print(f"  plain token bits/byte (one tokenization) {plain.bits / n:.4f}")
    print(f"  difference {(plain.bits - exact) / n:.2e} bits/byte")
    return 0


def cmd_train_hypernet(args: argparse.Namespace) -> int:
    """Train a ZeTT hypernetwork with LightningCLI (all arguments go to it; see hypernet/train.py)."""
    from tokenshift.hypernet.train import main as train_main

    return train_main(args.rest)


def cmd_train(args: argparse.Namespace) -> int:
    """Train HAT, FLEXITOKENS, ByteLM or TokenLM with LightningCLI (all arguments go to it; see models/train.py)."""
    from tokenshift.models.train import main as train_main

    return train_main(args.rest)


def cmd_segment(args: argparse.Namespace) -> int:
    """Print a text with a FLEXITOKENS model's segment boundaries marked; optionally HTML and PNG views."""
    from tokenshift.models.base import is_native, load_pretrained
    from tokenshift.models.flexitokens import FlexiTokensLM
    from tokenshift.models.segment import bytes_per_segment, render_html, render_png, render_text, segment

    if (args.text is None) == (args.file is None):
        raise UserError("give the text with --text or --file (one of them)")
    if not is_native(args.model):
        raise UserError(f"model: {args.model!r} is not a model folder from `tokenshift train`")
    check_writable_file("--html", args.html)
    check_writable_file("--png", args.png)
    text = unescape(args.text).encode("utf-8") if args.text is not None else read_text("--file", args.file)[1]
    model = load_pretrained(args.model)
    if not isinstance(model, FlexiTokensLM):
        raise UserError(f"model: {args.model!r} is a {type(model).__name__}; segment needs a FLEXITOKENS model")
    limit = min(args.max_bytes or model.config.max_bytes - 1, model.config.max_bytes - 1)
    if len(text) > limit:
        text = text[:limit].decode("utf-8", "ignore").encode("utf-8")  # valid UTF-8: only a cut last character goes
        print(f"(segmenting the first {len(text)} bytes: --max-bytes and the model's context window of "
              f"{model.config.max_bytes - 1} bytes allow {limit})", file=sys.stderr)
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
    "train": (cmd_train, "train a byte-level LM (HAT, FLEXITOKENS with the hinge or binomial boundary loss, ByteLM) "
                         "or a BPE baseline from a YAML config (LightningCLI)"),
    "train-hypernet": (cmd_train_hypernet, "train a ZeTT hypernetwork that predicts a model's embeddings for any tokenizer"),
    "dynamic": (cmd_dynamic, "dynamic tokenization: batch-level merges, shorter sequences and their bits-per-byte cost"),
    "segment": (cmd_segment, "show where a FLEXITOKENS model puts its segment boundaries (text, HTML, PNG)"),
}

def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tokenshift", description="Free language models from their tokenizer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kw) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1], **kw)
        p.add_argument("--verbose", action="store_true",
                       help="show the libraries' own notices and loading bars (hidden by default)")
        return p

    audit = command("audit")
    audit.add_argument("tokenizer", nargs="+", help="built-in name (smollm2, gpt2, mistral, cl100k, qwen, gemma3) or path")
    audit.add_argument("--text", nargs="+", help="UTF-8 text files or builtin:en / builtin:code (default: "
                       "../shared/data/*.valid.txt when present, else builtin:en and builtin:code)")
    audit.add_argument("--json", type=Path, help="also write the results here (bench/results/audit.json format)")
    model_help = MODEL_HELP
    gen = command("generate")
    gen.add_argument("model", nargs="+", help=model_help + "; several with --ensemble")
    gen.add_argument("--ensemble", choices=("mixture", "product"), help="pool several models' next-byte distributions")
    gen.add_argument("--weights", nargs="+", type=real(0.0), help="ensemble weights, one per model (default: equal)")
    gen.add_argument("--prompt", required=True, help="text to continue (\\n and \\t are understood)")
    add_decoding_options(gen, max_bytes=128)
    gen.add_argument("--top-p", type=real(0.0, 1.0, low_open=True), default=1.0,
                     help="nucleus sampling on the byte distribution, in (0, 1] (default 1: off)")
    gen.add_argument("--raw", action="store_true", help="take the prompt literally (no \\n escapes)")
    score = command("score")
    score.add_argument("model", help=model_help)
    score.add_argument("--text", required=True, help="a UTF-8 text file (or builtin:en / builtin:code)")
    score.add_argument("--max-bytes", type=count(1), default=2000, help="score the first N bytes (default 2000)")
    add_transplant_arguments(command("transplant"))
    fim = command("fim")
    fim.add_argument("model", help="a local Hugging Face model folder whose tokenizer has FIM tokens (" + FIM_RECIPE + ")")
    fim.add_argument("--prefix-file", required=True, type=Path, help="the code before the gap")
    fim.add_argument("--suffix-file", required=True, type=Path, help="the code after the gap")
    fim.add_argument("--order", choices=("psm", "spm"), default="psm", help="FIM prompt order (default psm)")
    add_decoding_options(fim, max_bytes=256)
    fim.add_argument("--middle-only", action="store_true", help="print only the middle")
    add_dynamic_arguments(command("dynamic"))
    seg = command("segment")
    seg.add_argument("model", help="a FLEXITOKENS model folder from `tokenshift train`")
    seg.add_argument("--text", help="the text to segment (\\n and \\t are understood)")
    seg.add_argument("--file", help="or a UTF-8 text file")
    seg.add_argument("--max-bytes", type=count(1), help="segment the first N bytes (default: as many as the model's "
                     "context window holds)")
    seg.add_argument("--boundaries", choices=("sampled", "threshold"),
                     help="override the model's eval_boundaries (default: the model's own)")
    seg.add_argument("--html", type=Path, help="also write an HTML page (alternating backgrounds per segment)")
    seg.add_argument("--png", type=Path, help="also write a small PNG")
    sub.add_parser("train", help=COMMANDS["train"][1], description=COMMANDS["train"][1], add_help=False)
    sub.add_parser("train-hypernet", help=COMMANDS["train-hypernet"][1], add_help=False)
    return parser


def quiet_libraries(verbose: bool) -> None:
    """Hide the notices and loading bars of transformers and friends that we know are harmless
    (the Llama tokenizer's "legacy behaviour" notice, GGUF de-quantizing bars), unless `verbose`."""
    from tokenshift import assets

    assets.VERBOSE = verbose
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars, one per load and save


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("train", "train-hypernet"):  # these hand their arguments to LightningCLI
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    quiet_libraries(getattr(args, "verbose", False))
    func = COMMANDS[args.command][0]
    try:
        return func(args)
    except (UserError, ValueError, OSError) as err:  # AssetError is a ValueError; a TypeError is a bug
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        print(f"tokenshift {args.command}: error: {' '.join(lines) or type(err).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
