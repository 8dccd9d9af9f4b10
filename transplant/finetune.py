"""Recovery after a transplant: train only the input embeddings and the LM head, on a text file.

What ReTok (arXiv 2410.04335) does after re-initialising the two layers and
what users of a transplanted model do next: the body stays frozen, so the
model keeps what it knew and only learns to read and write the new ids. With
`train_new_rows_only`, the rows `transplant()` copied exactly (tokens both
vocabularies share, specials mapped by text or role) get no gradient either:
only the estimated rows move.

Training (a LightningModule and `lightning.Trainer`, `max_steps` = steps):
- AdamW (betas 0.9/0.95) with **no weight decay**: decay would shrink every
  row, including rows that get no gradient (copied rows under
  `train_new_rows_only`, padded rows, tokens absent from the text), and
  there is no body whose weights need regularising. With zero gradient and
  zero decay, Adam's update of a row is exactly zero, so masked rows stay
  bit-identical.
- Linear warmup over 10% of the steps, then cosine to 10% of the learning
  rate (`common.training.lr_factor`, the schedule of every model trained here).
  Neither ReTok nor TokenAdapt publishes a recipe for this step; warmup keeps
  Adam's first, badly-scaled steps from wrecking the transplanted rows, and
  the cosine tail lets a short, fixed budget settle instead of ending on a
  full-size step.
- Gradient clipping at norm 1.0; default learning rate 1e-4. With a tied
  head every row gets a softmax gradient and Adam turns even a tiny one into
  a step of about the learning rate, so a larger rate also moves the rows
  copied exactly from the old model (the README's recovery table measures it).
- Data: the text is cut into documents (blank lines, `# file:` headers:
  `common.packing.split_documents`), encoded canonically, and packed into rows
  of `block_size` ids, each piece after the document start token
  (`<|endoftext|>`, as `token_bits_per_byte` reads texts), drawn by the
  project's seeded endless shuffle (`common.batches.StepBatches`). A HF model
  attends across the documents packed in one row, as usual causal-LM packing
  does. Logits are cut to the tokenizer's ids, so padded rows (a matrix
  longer than the vocabulary) get no gradient and stay untouched.

Same seed, same data, same steps -> the same weights (on one device). The
model is trained in place and stays an ordinary HF model: its parameters'
`requires_grad`, its train/eval mode and its device are restored, and the
gradient hooks removed, so `save_pretrained` / `AutoModelForCausalLM` work
as before. Not handled: resuming an interrupted finetune (no checkpoints are
written: they would hold the whole frozen body); LoRA or unfreezing the body.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.common.embeddings import embedding_parameters

LN2 = math.log(2.0)


def trainable_matrices(model: Any) -> list[torch.nn.Parameter]:
    """The input embedding matrix and, when the head is untied, the output matrix (one parameter if tied)."""
    rows_in, rows_out = embedding_parameters(model)
    return [rows_in] if rows_out is None else [rows_in, rows_out]


def row_mask(n_rows: int, vocab_size: int, frozen: Sequence[int] = ()) -> torch.Tensor:
    """(n_rows, 1) float mask: 1 for rows that train, 0 for padded rows (>= vocab_size) and `frozen` ids.

    Example: row_mask(5, 4, [1]) -> [[1], [0], [1], [1], [0]].
    """
    mask = torch.zeros(n_rows, 1)
    mask[: min(vocab_size, n_rows)] = 1.0
    frozen = [i for i in frozen if 0 <= i < n_rows]
    if frozen:
        mask[torch.tensor(frozen)] = 0.0
    return mask


def _read_texts(texts_or_path: Any) -> list[str]:
    """A str or Path names a file; bytes or a list hold the text itself (never a guess between the two)."""
    from tokenshift.bytelevel.corpus import read_text_bytes

    if isinstance(texts_or_path, str) and ("\n" in texts_or_path or len(texts_or_path) > 4096):
        raise ValueError(f"a str here names a text file, and this one looks like text ({len(texts_or_path):,} "
                         "characters): pass the text itself as a list ([text]) or as bytes")
    if isinstance(texts_or_path, (bytes, bytearray)):
        return [bytes(texts_or_path).decode("utf-8")]
    if isinstance(texts_or_path, (str, Path)):
        return [read_text_bytes(texts_or_path).decode("utf-8")]
    if isinstance(texts_or_path, (list, tuple)) and texts_or_path:
        return [t.decode("utf-8") if isinstance(t, (bytes, bytearray)) else str(t) for t in texts_or_path]
    raise TypeError(f"texts_or_path: expected a text file path or a non-empty list of texts, got "
                    f"{type(texts_or_path).__name__}{' (empty)' if isinstance(texts_or_path, (list, tuple)) else ''}")


def copied_rows_of(report: Any) -> list[int]:
    """The new ids a transplant copied, read from its report (for `train_new_rows_only`)."""
    if report is None or not report.copied_ids:
        raise ValueError("train_new_rows_only needs to know which rows were copied: call it on the model "
                         "transplant() returned, or pass copied_rows= (the ids; a saved report's copied_ids "
                         "read with tokenshift.transplant.api.parse_id_ranges)")
    from .api import parse_id_ranges

    return parse_id_ranges(report.copied_ids)


def pack_text(vocab: ByteVocab, texts: list[str], block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), (N, block_size) each: the texts' documents, encoded and packed after the start token."""
    from tokenshift.common.packing import pack, split_documents

    docs = []
    for text in texts:
        for doc in split_documents(text):
            ids = vocab.encode(doc.encode("utf-8"), strict=False)
            if ids:
                docs.append(ids)
    if not docs:
        raise ValueError("finetune_embeddings: the text has no content to train on; pass a non-empty UTF-8 text")
    start = vocab.start_id
    end = vocab.eos_id if vocab.eos_id is not None else start
    return pack(docs, bos=start, eot=end, seq_len=block_size)


@functools.cache
def recovery_base():
    """A LightningModule base with the optimiser and schedule every recovery run here shares (lightning is a
    heavy import, so the class is made on first use, once)."""
    import lightning as L

    from tokenshift.common.training import lr_factor

    class RecoveryModule(L.LightningModule):
        """AdamW (0.9, 0.95) without weight decay on the parameters that require grad; warmup then cosine."""

        def __init__(self, net: Any, lr: float, warmup: int, min_lr_ratio: float = 0.1):
            super().__init__()
            self.net = net  # the name ExportPretrained expects
            self.lr, self.warmup, self.min_lr_ratio = lr, warmup, min_lr_ratio
            self.losses: list[float] = []
            self.tokens_seen = 0

        def configure_optimizers(self) -> dict:
            params = [p for p in self.net.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=self.lr, betas=(0.9, 0.95), weight_decay=0.0)
            total = self.trainer.max_steps
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda step: lr_factor(step, self.warmup, total, self.min_lr_ratio))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return RecoveryModule


def _module_class():
    """The LM-loss LightningModule, defined on first use."""
    import torch.nn.functional as F

    from tokenshift.common.packing import IGNORE

    class EmbeddingFinetune(recovery_base()):
        """Next-token cross-entropy of a HF causal LM whose trainable parameters are set by the caller."""

        def __init__(self, net: Any, vocab_size: int, target_bytes: torch.Tensor, lr: float, warmup: int,
                     min_lr_ratio: float = 0.1):
            super().__init__(net, lr, warmup, min_lr_ratio)
            self.vocab_size = vocab_size
            self.register_buffer("target_bytes", target_bytes, persistent=False)

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            logits = self.net(input_ids=batch["input"]).logits[..., : self.vocab_size]  # (B, T, V): no padded rows
            target = batch["target"]
            nats = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE,
                                   reduction="sum")
            keep = target != IGNORE
            n_tokens = keep.sum().clamp(min=1)
            n_bytes = self.target_bytes[target.clamp(min=0)][keep].sum().clamp(min=1)
            loss = nats / n_tokens
            self.losses.append(float(loss.detach()))
            self.tokens_seen += int(keep.sum())
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/bpb", nats / LN2 / n_bytes, prog_bar=True)
            self.log("lr", self.optimizers().param_groups[0]["lr"])
            return loss

    return EmbeddingFinetune


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's start-up notes (devices found, logger tips) and warnings that do not apply here: an endless
    in-memory loader wants no workers, and a frozen body is meant."""
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            for message in (".*does not have many workers.*", ".*LeafSpec.*", ".*module\\(s\\) in eval mode.*",
                            ".*max_steps=.* reached.*"):
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _accelerator(device: str) -> str:
    choices = {"auto": "auto", "cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "mps": "mps"}
    if device not in choices:
        raise ValueError(f"device: unknown {device!r}; choose one of {', '.join(choices)}")
    return choices[device]


@contextlib.contextmanager
def kept_state(model: Any):
    """Restore, on leaving, each of `model`'s parameters' `requires_grad` (those it has now), its train/eval
    mode and its device."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    was_training, home = model.training, next(model.parameters()).device
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            if name in flags:
                p.requires_grad_(flags[name])
        model.to(home)
        model.train(was_training)


def run_recovery(model: Any, module: Any, loader: Any, steps: int, masks: dict, seed: int, accelerator: str,
                 gradient_clip: float, out_dir: str | Path | None, progress: bool,
                 extra: Sequence[torch.nn.Parameter] = (), callbacks: Sequence[Any] = (),
                 ckpt_path: str | None = None) -> tuple[Any, float]:
    """Train `module` (which wraps `model`) for `steps` steps; only the parameters in `masks` (each with its
    (rows, 1) gradient mask) and `extra` (unmasked, e.g. LoRA adapters) get gradients.

    Everything else is frozen for the run; afterwards every parameter's `requires_grad`, the model's train/eval
    mode and device are restored and the gradient hooks removed. Returns (trainer, seconds of training).
    """
    import lightning as L

    from tokenshift.common.training import ExportPretrained, MetricsLog

    with kept_state(model):
        hooks = []
        for p in model.parameters():
            p.requires_grad_(False)
        for p, mask in masks.items():
            p.requires_grad_(True)
            hooks.append(p.register_hook(lambda g, mask=mask: g * mask.to(g.device, g.dtype)))
        for p in extra:
            p.requires_grad_(True)

        L.seed_everything(seed, workers=True, verbose=False)
        callbacks = list(callbacks)
        if out_dir is not None:
            out = Path(out_dir)
            callbacks += [MetricsLog(out / "metrics.jsonl"), ExportPretrained(out / "model")]
        with _quiet_lightning():
            trainer = L.Trainer(max_steps=steps, accelerator=accelerator, devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                                gradient_clip_val=gradient_clip, callbacks=callbacks, num_sanity_val_steps=0,
                                limit_val_batches=0, default_root_dir=str(out_dir) if out_dir else None)
        started = time.perf_counter()
        try:
            model.train()  # dropout as in any fine-tuning (Llama-style models have none)
            with _quiet_lightning():
                trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt_path)
        finally:
            for h in hooks:
                h.remove()
    return trainer, time.perf_counter() - started


def finetune_embeddings(model: Any, tokenizer: Any, texts_or_path: Any, steps: int, batch_size: int = 8,
                        block_size: int = 256, learning_rate: float = 1e-4, train_new_rows_only: bool = False,
                        seed: int = 0, out_dir: str | Path | None = None, device: str = "auto",
                        copied_rows: Sequence[int] | None = None, warmup_ratio: float = 0.1,
                        gradient_clip: float = 1.0, progress: bool = True) -> dict:
    """Train `model`'s input embeddings and LM head (nothing else) for `steps` steps on a text; in place.

    `tokenizer`: the model's (new) tokenizer, a HF tokenizer or a `ByteVocab`.
    `texts_or_path`: a UTF-8 text file, or a list of texts. `train_new_rows_only`:
    freeze the rows the transplant copied, read from `model.transplant_report`
    (or given as `copied_rows`, new ids). `out_dir`: also write `metrics.jsonl`
    (per-step loss, bits per byte, lr) and the finetuned model in `out_dir/model`.
    Returns a summary: steps, loss_start / loss_end (mean of the first and
    last tenth of the steps, at most 10), losses, seconds, tokens_seen, and
    the settings. The summary is also stored in `model.transplant_report.finetune`
    when the model has a report.
    """
    from tokenshift.common.batches import Rows, StepBatches

    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise ValueError(f"steps: expected a positive number of training steps, got {steps!r}")
    for name, value in (("batch_size", batch_size), ("block_size", block_size)):
        if not isinstance(value, int) or value < (2 if name == "block_size" else 1):
            raise ValueError(f"{name}: expected an integer >= {2 if name == 'block_size' else 1}, got {value!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate: expected > 0, got {learning_rate!r}")
    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio: expected a fraction in [0, 1), got {warmup_ratio!r}")
    accelerator = _accelerator(device)
    report = getattr(model, "transplant_report", None)
    if train_new_rows_only and copied_rows is None:
        copied_rows = copied_rows_of(report)
    texts = _read_texts(texts_or_path)
    vocab = ByteVocab.of(tokenizer)
    matrices = trainable_matrices(model)
    n_rows = matrices[0].shape[0]
    if n_rows < len(vocab.pieces):
        raise ValueError(f"the model has {n_rows} embedding rows but the tokenizer has {len(vocab.pieces)} ids; "
                         "pass the tokenizer the model was transplanted to")
    inputs, targets = pack_text(vocab, texts, block_size)
    target_bytes = torch.tensor([len(p) if p else 0 for p in vocab.pieces], dtype=torch.float32)

    mask = row_mask(n_rows, len(vocab.pieces), copied_rows if train_new_rows_only else ())
    warmup = max(1, round(warmup_ratio * steps)) if warmup_ratio else 0
    module = _module_class()(model, len(vocab.pieces), target_bytes, learning_rate, warmup)
    loader = torch.utils.data.DataLoader(Rows(inputs, targets), batch_sampler=StepBatches(len(inputs), batch_size,
                                                                                           seed))
    trainer, seconds = run_recovery(model, module, loader, steps, {p: mask for p in matrices}, seed=seed,
                                    accelerator=accelerator, gradient_clip=gradient_clip, out_dir=out_dir,
                                    progress=progress)
    if out_dir is not None and hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(Path(out_dir) / "model")
    losses = module.losses
    k = max(1, min(10, len(losses) // 10))
    summary = {
        "steps": len(losses), "loss_start": float(np.mean(losses[:k])), "loss_end": float(np.mean(losses[-k:])),
        "losses": [round(x, 5) for x in losses], "seconds": seconds, "tokens_seen": module.tokens_seen,
        "train_rows": int(len(inputs)), "train_tokens": int((targets != -100).sum()),
        "batch_size": batch_size, "block_size": block_size, "learning_rate": learning_rate,
        "schedule": f"AdamW (0.9, 0.95), no weight decay; linear warmup {warmup} steps, cosine to 0.1x; clip "
                    f"{gradient_clip}",
        "train_new_rows_only": train_new_rows_only, "trainable_rows": int(mask.sum()),
        "matrices": "tied embeddings/head" if len(matrices) == 1 else "input embeddings + untied head",
        "seed": seed, "device": str(trainer.strategy.root_device),
    }
    if report is not None:
        report.finetune = summary
    return summary
