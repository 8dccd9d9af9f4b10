"""Recovery by cross-tokenizer distillation: Approximate Likelihood Matching (ALM).

Minixhofer, Vulić & Ponti, "Universal Cross-Tokenizer Distillation via
Approximate Likelihood Matching" (arXiv 2503.20083); defaults read from their
JAX implementation (bminixhofer/tokenkit, `scripts/cross_tokenizer_distill.py`,
`tokenkit/training/losses.py`, `tokenkit/align.py`). After a transplant the
original model (teacher, old tokenizer) and the converted model (student, new
tokenizer) read the same bytes. Instead of the student's own next-token loss,
the student learns to give every stretch of text the probability the teacher
gives it:

- **Chunks.** Both tokenizations spell the same bytes (`ByteVocab`), so the
  positions where *both* have a token boundary are known exactly; the text
  between two consecutive shared boundaries is a chunk (a few tokens on each
  side). `alm.align_chunks` computes this with byte offsets; tokenkit compares
  normalised token strings (its "unconstrained" alignment), which is the same
  thing for byte-level tokenizers and needs special cases for the others.
- **Chunk likelihood.** log p(chunk) = the sum of the log-probabilities of the
  chunk's tokens (teacher and student each on their own tokens).
- **Debiasing (tokenkit's default `alm_mode=merge_by_space_prob+append_space`).**
  A chunk's token probability also says how the text goes on (a token that
  ends a word implies the next token starts a new one): the two models' chunk
  probabilities are only comparable where a word ends. So each chunk's
  likelihood is multiplied by the model's probability that the *next* token
  starts with a space, tab or newline or is special ("space" tokens, tokenkit's
  `space_mask_mode=space+tab+newline+special`), and consecutive chunks are
  merged until one ends where the teacher's space probability is above
  `merge_threshold` (0.1, tokenkit's `tokenizer_pair_bias_threshold`).
  No chunk is skipped: this mode merges where the first version of the paper
  dropped chunks whose precomputed tokenization-bias difference exceeded a
  threshold (tokenkit's `alm_unbiased`, which needs tokenizer-pair statistics;
  not implemented here). `debias=False` compares the plain chunks.
- **Distance.** The binarised f-divergence: each chunk likelihood p becomes
  the two-outcome distribution (p^(1/τ), 1 - p^(1/τ)) with τ = 100 (tokenkit's
  `binarization_temp`) and teacher and student are compared by the binary KL
  divergence, averaged over the (merged) chunks of the batch (tokenkit's
  `distill_main_path_numerator/denominator=chunk_count`). tokenkit's
  `binary_ce` is this plus the teacher's binary entropy: the same gradients;
  the KL is what is reported (0 when the student matches).
- **LM loss.** The paper's point is pure distillation (ALM alone), the
  default here (`lm_weight=0`). tokenkit's documented recipe adds the
  student's next-token loss and balances the two by last-layer gradient
  magnitudes (GradMag); here `lm_weight` adds it with a fixed weight instead
  (GradMag is not implemented).

Training is `finetune.run_recovery`, the loop of `finetune_embeddings`: Lightning,
AdamW (0.9, 0.95) without decay, warmup over 10% of the steps then cosine to
0.1x, clip 1.0, only the embedding/head rows asked for move (gradient masks),
and optionally LoRA adapters on the body's attention and MLP projections
(`lora_rank`, `peft`; tokenkit's default rank = alpha = 64 on q/k/v/o and
gate/up/down), merged into the weights at the end so the student stays a plain
HF model. Same seed, same data, same steps -> the same weights (one device).

Differences from tokenkit, on purpose: texts are packed like the finetune's
(documents after the start token, several per row, pieces cut at character
boundaries of the student's tokens), and merged chunks never cross a piece's
end; the teacher's and student's start tokens are not distilled (tokenkit
aligns specials by role); no hidden-state (`alm_latents`) loss, no hypernet
projector, and the default learning rate is the finetune's 1e-4 (tokenkit:
1e-5 with LoRA on 2-8B models, 5k steps). Not handled: resuming an interrupted
run (no checkpoints: they would hold both models).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab

from .alm import PairRows, alm_loss, chunk_sums, collate_pairs, pack_pairs, space_mask, token_logprobs
from .finetune import (_accelerator, _read_texts, copied_rows_of, kept_state, recovery_base, row_mask, run_recovery,
                       trainable_matrices)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _module_class():
    """The ALM LightningModule, defined on first use."""
    class ALMDistill(recovery_base()):
        """The student's ALM loss against a frozen teacher (kept outside the module's parameters)."""

        def __init__(self, net: Any, teacher: Any, s_vocab: int, t_vocab: int, s_space: torch.Tensor,
                     t_space: torch.Tensor, lr: float, warmup: int, temperature: float, merge_threshold: float,
                     debias: bool, lm_weight: float):
            super().__init__(net, lr, warmup)
            self.teacher = [teacher]  # a list: not a submodule, so not trained, saved or switched to train mode
            self.s_vocab, self.t_vocab = s_vocab, t_vocab
            self.register_buffer("s_space", s_space, persistent=False)
            self.register_buffer("t_space", t_space, persistent=False)
            self.temperature, self.merge_threshold, self.debias = temperature, merge_threshold, debias
            self.lm_weight = lm_weight
            self.alm_losses: list[float] = []

        def on_train_start(self) -> None:
            self.teacher[0].to(self.device).eval()

        def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
            n = len(batch["seg_end"])
            with torch.no_grad():
                t_logits = self.teacher[0](input_ids=batch["t_input"]).logits[..., : self.t_vocab]
                t_tok, t_sp = token_logprobs(t_logits, batch["t_input"], self.t_space)
                del t_logits
                t_chunk = chunk_sums(t_tok, batch["t_chunk"], n)
                t_space = t_sp.reshape(-1)[batch["t_last"]]
            s_logits = self.net(input_ids=batch["s_input"]).logits[..., : self.s_vocab]
            s_tok, s_sp = token_logprobs(s_logits, batch["s_input"], self.s_space)
            s_chunk = chunk_sums(s_tok, batch["s_chunk"], n)
            s_space = s_sp.reshape(-1)[batch["s_last"]]
            alm, stats = alm_loss(t_chunk, s_chunk, t_space, s_space, batch["seg_end"], self.temperature,
                                  self.merge_threshold, self.debias)
            keep = batch["s_chunk"] >= 0
            lm = -s_tok[keep].mean()
            loss = alm + self.lm_weight * lm if self.lm_weight else alm
            self.losses.append(float(loss.detach()))
            self.alm_losses.append(float(alm.detach()))
            self.tokens_seen += int(keep.sum())
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/alm", alm)
            self.log("train/lm", lm.detach(), prog_bar=True)
            self.log("train/chunks", float(stats["chunks"]))
            self.log("train/teacher_chunk_nats", stats["teacher_nats"])
            self.log("train/student_chunk_nats", stats["student_nats"])
            self.log("lr", self.optimizers().param_groups[0]["lr"])
            return loss

    return ALMDistill


# -- LoRA -----------------------------------------------------------------------------------------------------


def _add_lora(model: Any, rank: int, alpha: float | None, targets: Sequence[str]) -> tuple[Any, list]:
    """Inject LoRA adapters into `model` in place (peft); returns (the peft wrapper, the adapter parameters)."""
    try:
        import peft
    except ImportError as err:
        raise ImportError("lora_rank: LoRA adapters need the optional `peft` package (pip install peft)") from err
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [t for t in targets if t in present]
    if not found:
        raise ValueError(f"lora_targets: none of {list(targets)} is a module of {type(model).__name__}; name its "
                         "linear layers (e.g. q_proj, v_proj)")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha if alpha is not None else rank, lora_dropout=0.0,
                             target_modules=found, bias="none")
    wrapped = peft.get_peft_model(model, config)
    adapters = [p for n, p in model.named_parameters() if "lora_" in n]
    return wrapped, adapters


# -- the entry point ------------------------------------------------------------------------------------------


def distill_transplant(teacher: Any, teacher_tokenizer: Any, student: Any, student_tokenizer: Any, text: Any,
                       steps: int, batch_size: int = 8, block_size: int = 256, learning_rate: float = 1e-4,
                       temperature: float = 100.0, merge_threshold: float = 0.1, debias: bool = True,
                       lm_weight: float = 0.0, train_embeddings: bool = True, train_new_rows_only: bool = False,
                       copied_rows: Sequence[int] | None = None, lora_rank: int = 0, lora_alpha: float | None = None,
                       lora_targets: Sequence[str] = LORA_TARGETS, seed: int = 0, out_dir: str | Path | None = None,
                       device: str = "auto", warmup_ratio: float = 0.1, gradient_clip: float = 1.0,
                       progress: bool = True) -> dict:
    """Distil `teacher` (the original model, `teacher_tokenizer`) into `student` (the transplanted model,
    `student_tokenizer`) with ALM for `steps` steps on `text`; the student is trained in place.

    `text`: a UTF-8 text file path (str or Path), the text as bytes, or a list of texts. Trains the
    student's input embeddings and LM head (`train_embeddings`; only the rows
    transplant() estimated with `train_new_rows_only`, read from
    `student.transplant_report` or `copied_rows`) and, with `lora_rank` > 0,
    LoRA adapters on `lora_targets`, merged into the body at the end. The
    teacher is never changed. `out_dir`: also write `metrics.jsonl` and the
    student in `out_dir/model`. Returns a summary (steps, loss_start / loss_end,
    losses, alm_losses, seconds, settings); it is also stored as
    `student.transplant_report.distill` when the student has a report.
    """
    from tokenshift.common.batches import StepBatches
    from tokenshift.common.training import MetricsLog

    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise ValueError(f"steps: expected a positive number of training steps, got {steps!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("block_size", block_size, 2),
                             ("lora_rank", lora_rank, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    for name, value in (("learning_rate", learning_rate), ("temperature", temperature)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name}: expected > 0, got {value!r}")
    if not 0 <= merge_threshold < 1:
        raise ValueError(f"merge_threshold: expected a probability in [0, 1), got {merge_threshold!r}")
    if not lm_weight >= 0:
        raise ValueError(f"lm_weight: expected >= 0, got {lm_weight!r}")
    if not 0 <= warmup_ratio < 1:
        raise ValueError(f"warmup_ratio: expected a fraction in [0, 1), got {warmup_ratio!r}")
    if not train_embeddings and not lora_rank:
        raise ValueError("train_embeddings=False with lora_rank=0 leaves nothing to train; set lora_rank > 0")
    if teacher is student:
        raise ValueError("teacher and student are the same object; pass the original model as the teacher and "
                         "the transplanted model as the student")
    accelerator = _accelerator(device)
    if isinstance(text, (bytes, bytearray)):
        text = [bytes(text)]
    report = getattr(student, "transplant_report", None)
    if train_new_rows_only and copied_rows is None:
        copied_rows = copied_rows_of(report)
    texts = _read_texts(text)
    t_vocab, s_vocab = ByteVocab.of(teacher_tokenizer), ByteVocab.of(student_tokenizer)
    for who, model, vocab in (("teacher", teacher, t_vocab), ("student", student, s_vocab)):
        rows_n = model.get_input_embeddings().weight.shape[0]
        if rows_n < len(vocab.pieces):
            raise ValueError(f"the {who} has {rows_n} embedding rows but its tokenizer has {len(vocab.pieces)} ids; "
                             f"pass the {who}'s own tokenizer (teacher: the original one, student: the new one)")
        vocab.require_lossless(f"distill_transplant ({who} tokenizer)")
    rows, data_stats = pack_pairs(t_vocab, s_vocab, texts, block_size)

    with kept_state(teacher), kept_state(student):  # the student's as before its LoRA adapters
        torch.manual_seed(seed)  # LoRA's initialisation
        wrapped, adapters = _add_lora(student, lora_rank, lora_alpha, lora_targets) if lora_rank else (None, [])
        matrices = trainable_matrices(student)
        n_rows = matrices[0].shape[0]
        mask = row_mask(n_rows, len(s_vocab.pieces), copied_rows if train_new_rows_only else ())
        if not train_embeddings:
            mask = torch.zeros_like(mask)
        warmup = max(1, round(warmup_ratio * steps)) if warmup_ratio else 0
        module = _module_class()(student, teacher, len(s_vocab.pieces), len(t_vocab.pieces), space_mask(s_vocab),
                                 space_mask(t_vocab), learning_rate, warmup, temperature, merge_threshold, debias,
                                 lm_weight)
        loader = torch.utils.data.DataLoader(
            PairRows(rows), batch_sampler=StepBatches(len(rows), batch_size, seed),
            collate_fn=lambda batch: collate_pairs(batch, t_vocab.start_id))
        callbacks = [MetricsLog(Path(out_dir) / "metrics.jsonl")] if out_dir is not None else []
        for p in teacher.parameters():
            p.requires_grad_(False)
        try:
            trainer, seconds = run_recovery(student, module, loader, steps,
                                            {p: mask for p in matrices} if train_embeddings else {},
                                            seed=seed, accelerator=accelerator, gradient_clip=gradient_clip,
                                            out_dir=None, progress=progress, extra=adapters, callbacks=callbacks)
        finally:
            if wrapped is not None:
                merged = wrapped.merge_and_unload()
                assert merged is student, "peft returned a new model object"
    if out_dir is not None:
        student.save_pretrained(Path(out_dir) / "model")
        if hasattr(student_tokenizer, "save_pretrained"):
            student_tokenizer.save_pretrained(Path(out_dir) / "model")
    losses, alm = module.losses, module.alm_losses
    k = max(1, min(10, len(losses) // 10))
    summary = {
        "steps": len(losses), "loss_start": float(np.mean(losses[:k])), "loss_end": float(np.mean(losses[-k:])),
        "losses": [round(x, 6) for x in losses], "alm_losses": [round(x, 6) for x in alm], "seconds": seconds,
        "tokens_seen": module.tokens_seen, "train_rows": len(rows), "data": data_stats,
        "batch_size": batch_size, "block_size": block_size, "learning_rate": learning_rate,
        "loss": f"ALM binary KL, temperature {temperature}, " + (
            f"debiased (space prob, chunks merged below {merge_threshold})" if debias else "no debiasing")
        + (f" + {lm_weight} x student LM loss" if lm_weight else ""),
        "schedule": f"AdamW (0.9, 0.95), no weight decay; linear warmup {warmup} steps, cosine to 0.1x; clip "
                    f"{gradient_clip}",
        "train_embeddings": train_embeddings, "train_new_rows_only": train_new_rows_only,
        "trainable_rows": int(mask.sum()) if train_embeddings else 0,
        "lora": {"rank": lora_rank, "alpha": lora_alpha if lora_alpha is not None else lora_rank,
                 "targets": list(lora_targets), "parameters": int(sum(p.numel() for p in adapters))}
        if lora_rank else None,
        "matrices": "tied embeddings/head" if len(matrices) == 1 else "input embeddings + untied head",
        "seed": seed, "device": str(trainer.strategy.root_device),
    }
    if report is not None:
        report.distill = summary
    return summary
