"""The whole conversion job as one call: transplant, judge in bits per byte, optionally recover, judge again.

`tokenshift transplant` is this function plus argument parsing and printing; a
library user gets the same job (and the same report) without the CLI. Scores are
taken on the plain tokenization of each text (`token_bits_per_byte`): the original
model before, the converted one after, and after recovery when asked for.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from tokenshift.bytelevel.scoring import token_bits_per_byte

from .api import transplant


@dataclass(frozen=True)
class Recovery:
    """Training after the transplant, embeddings and head only: LM finetuning, or ALM distillation from
    the original model (`distill=True`)."""

    steps: int
    text: bytes  # UTF-8 text to train on
    text_name: str = "text"  # what the report calls it
    distill: bool = False
    batch_size: int = 8
    learning_rate: float = 1e-4
    new_rows_only: bool = False  # train only the rows the transplant did not copy

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError(f"Recovery: steps, batch_size and learning_rate must be positive (got {self.steps}, "
                             f"{self.batch_size}, {self.learning_rate})")
        if not self.text:
            raise ValueError("Recovery: no text to train on")


def convert(model: Any, old_tokenizer: Any, new_tokenizer: Any, method: str = "tokenadapt", *,
            eval_texts: dict[str, bytes] | None = None, recovery: Recovery | None = None,
            log: Callable[[str], None] = lambda line: None, label: str = "", **transplant_options: Any) -> Any:
    """The converted model (a copy; `model` is untouched), its `transplant_report` holding the scores.

    `eval_texts`: name -> bytes; `report.eval[name]` gets "before" (the original model), "after" (the
    transplant) and, with `recovery`, "finetuned" (each `token_bits_per_byte`'s dict). `log` receives a
    line at each stage (the CLI prints them), the first one headed by `label`. Other keywords go to `transplant()`.
    """
    new = transplant(model, old_tokenizer, new_tokenizer, method, **transplant_options)
    report = new.transplant_report
    log(f"{label + ' ' if label else ''}({method}): {report.copied} rows copied, {sum(report.by_source.values())} estimated {report.by_source}, "
        f"{report.random_fallback} random, specials {report.specials} ({report.seconds:.0f} s)")
    texts = eval_texts or {}
    for name, data in texts.items():  # before recovery changes `new` in place
        t0 = time.perf_counter()
        report.eval[name] = {"before": token_bits_per_byte(model, old_tokenizer, [data], progress=False),
                             "after": token_bits_per_byte(new, new_tokenizer, [data], progress=False)}
        log(f"scored {name} ({len(data)} bytes): {report.eval[name]['before']['bits_per_byte']:.4f} -> "
            f"{report.eval[name]['after']['bits_per_byte']:.4f} bits/byte ({time.perf_counter() - t0:.0f} s)")
    if recovery is not None:
        from .distill import distill_transplant
        from .finetune import finetune_embeddings

        how = "distilling from the original model (ALM)" if recovery.distill else "finetuning (LM loss)"
        log(f"\n{how}, embeddings and head: {recovery.steps} steps on {len(recovery.text)} bytes of "
            f"{recovery.text_name}")
        options = dict(batch_size=recovery.batch_size, learning_rate=recovery.learning_rate,
                       train_new_rows_only=recovery.new_rows_only)
        train_text = [recovery.text.decode("utf-8", "ignore")]
        summary = (distill_transplant(model, old_tokenizer, new, new_tokenizer, train_text, recovery.steps, **options)
                   if recovery.distill else finetune_embeddings(new, new_tokenizer, train_text, recovery.steps, **options))
        summary["text"] = recovery.text_name
        log(f"{'distill' if recovery.distill else 'finetune'}: loss {summary['loss_start']:.4g} -> "
            f"{summary['loss_end']:.4g}, {summary['tokens_seen']} tokens, {summary['seconds']:.0f} s")
        for name, data in texts.items():
            report.eval[name]["finetuned"] = token_bits_per_byte(new, new_tokenizer, [data], progress=False)
    return new
