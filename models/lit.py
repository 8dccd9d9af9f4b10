"""One LightningModule for HAT, FLEXITOKENS, ByteLM and TokenLM: next-id cross-entropy, judged in bits per byte.

The model is chosen by the type of its config (`HATConfig`, `FlexiTokensConfig`,
`ByteLMConfig`, `TokenLMConfig`: `class_path` in the YAML). A model with an
auxiliary loss (FLEXITOKENS' boundary loss) has `forward_with_loss`: its loss is
added to the cross-entropy in training and its boundary rate is logged
(`train/boundary_rate`, `val/boundary_rate_<language>`); a batch's `"language"`
ids (`TextData.language_names`) select its per-language prior. Bits per byte stay pure
cross-entropy. Bits per byte are the summed
cross-entropy of every target (end of text included) over the bytes the
targets spell, so byte and token models share one scale. Validation logs
`val/bpb_<language>` for each loader of `TextData` and `val/bpb`, their mean.
Learning rate: linear warmup, then cosine to `min_lr_ratio * lr` at
`trainer.max_steps` (constant after warmup when there is no step budget).
Gradient clipping and precision (`32-true`, `bf16-mixed`) are Trainer options.
"""
from __future__ import annotations

import math
import time
from typing import Any, Union

import lightning as L
import torch
import torch.nn.functional as F

from tokenshift.common.packing import IGNORE
from tokenshift.common.training import lr_factor  # noqa: F401  (re-exported)

from . import registry
from .base import VOCAB
from .tokenlm import TokenLM, TokenLMConfig

LN2 = math.log(2.0)

# LightningCLI reads `config: ModelConfig` to check a YAML's class_path and init_args (Any would
# check nothing); the registry is full, as the package's __init__ ran before this module.
ModelConfig = Union[tuple(registry.config_classes())]


def build_model(config: Any, tokenizer: Any = None) -> torch.nn.Module:
    """The model a config describes (a TokenLM needs the tokenizer its data uses)."""
    cls = registry.model_for(config)
    if cls is None:
        raise TypeError(f"unknown model config {type(config).__name__}; use {_config_names()}")
    if not cls.needs_tokenizer:
        return cls(config)
    if tokenizer is None:
        raise ValueError(f"a {cls.__name__} needs its tokenizer: train it with TextData(stream='tokens') "
                         "or pass tokenizer=")
    return cls(config, tokenizer)


def _config_names() -> str:
    """'HATConfig, FlexiTokensConfig, ByteLMConfig or TokenLMConfig': the registered configs."""
    *rest, last = [c.__name__ for c in registry.config_classes()]
    return f"{', '.join(rest)} or {last}" if rest else last


class LitLM(L.LightningModule):
    def __init__(self, config: ModelConfig, lr: float = 3e-3,
                 min_lr_ratio: float = 0.1, warmup_steps: int = 100, weight_decay: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.95), tokenizer: Any = None):
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.model_config = config
        self.net: torch.nn.Module | None = None
        self._tokenizer = tokenizer
        if not isinstance(config, TokenLMConfig) or tokenizer is not None:
            self.configure_model()
        self.history: list[dict] = []  # one record per validation: time, step, bytes seen, bpb per language
        self._clock = time.perf_counter()
        self._elapsed = 0.0
        self._seen_bytes = 0.0
        self._val: dict[int, list[float]] = {}
        self.language_names: list[str] | None = None  # what batch["language"] ids name (set from TextData)
        self._prior_rows: torch.Tensor | None = None

    def configure_model(self) -> None:
        """Build the network (a TokenLM waits for the data module's tokenizer)."""
        if self.net is not None:
            return
        tok = self._tokenizer
        if tok is None and isinstance(self.model_config, TokenLMConfig):
            tok = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        self.net = build_model(self.model_config, tok)
        byte_counts = self.net.target_bytes() if isinstance(self.net, TokenLM) else torch.ones(VOCAB)
        if not isinstance(self.net, TokenLM):
            byte_counts[-1] = 0  # end of text spells no byte
        self.register_buffer("target_bytes", byte_counts, persistent=False)

    def setup(self, stage: str) -> None:
        names = getattr(getattr(self.trainer, "datamodule", None), "language_names", None)
        if names:
            self.set_language_names(names)

    def set_language_names(self, names: list[str]) -> None:
        """Name the language ids batches carry (TextData does this through the Trainer)."""
        self.language_names, self._prior_rows = list(names), None

    def _priors_of(self, language: torch.Tensor) -> torch.Tensor:
        """Data language ids -> rows of the model's per-language priors (`FlexiTokensConfig.prior_index`)."""
        if self.language_names is None:
            raise ValueError("the batch carries language ids but LitLM does not know their names: train with "
                             "TextData through a Trainer, or call set_language_names(names)")
        if self._prior_rows is None:
            self._prior_rows = torch.tensor(self.net.config.prior_index(self.language_names))
        return self._prior_rows.to(language.device)[language]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.net(ids)

    def _losses(self, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(mean loss with any auxiliary loss, summed nats, bytes spelled by the targets, the model's stats)."""
        if hasattr(self.net, "forward_with_loss"):  # FLEXITOKENS: boundary loss (language tags when the batch has them)
            language = batch.get("language")
            language = None if language is None else self._priors_of(language)
            logits, aux, stats = self.net.forward_with_loss(batch["input"], language)
        else:
            logits, aux, stats = self.net(batch["input"]), 0.0, {}
        target = batch["target"]
        nats = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=IGNORE, reduction="sum")
        keep = target != IGNORE
        n_bytes = self.target_bytes[target.clamp(min=0)][keep].sum()
        return nats / keep.sum().clamp(min=1) + aux, nats, n_bytes, stats

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, nats, n_bytes, stats = self._losses(batch)
        now = time.perf_counter()
        step_s, self._clock = now - self._clock, now
        self._elapsed += step_s
        self._seen_bytes += float(n_bytes)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bpb", nats / LN2 / n_bytes.clamp(min=1), prog_bar=True)
        self.log("train/bytes_per_s", float(n_bytes) / max(step_s, 1e-9))
        self.log("train/seen_bytes", self._seen_bytes)
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        if stats:
            self.log("train/boundary_loss", stats["boundary_loss"])
            self.log("train/boundary_rate", stats["boundaries"] / stats["bytes"].clamp(min=1), prog_bar=True)
        return loss

    def on_train_start(self) -> None:
        self._clock = time.perf_counter()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        _, nats, n_bytes, stats = self._losses(batch)
        acc = self._val.setdefault(dataloader_idx, [0.0, 0.0, 0.0, 0.0])
        acc[0] += float(nats)
        acc[1] += float(n_bytes)
        if stats:
            acc[2] += float(stats["boundaries"])
            acc[3] += float(stats["bytes"])

    def on_validation_epoch_start(self) -> None:
        self._val = {}

    def on_validation_epoch_end(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        names = getattr(dm, "valid_languages", None) or [str(i) for i in sorted(self._val)]
        record = {"step": int(self.global_step), "time_s": self._elapsed, "seen_bytes": self._seen_bytes, "bpb": {}}
        for i, (nats, n_bytes, boundaries, seg_bytes) in sorted(self._val.items()):
            bpb = nats / LN2 / max(n_bytes, 1.0)
            record["bpb"][names[i]] = bpb
            self.log(f"val/bpb_{names[i]}", bpb, add_dataloader_idx=False)
            if seg_bytes:  # a model with learned boundaries: its rate (1 / bytes per segment)
                rate = boundaries / seg_bytes
                record.setdefault("boundary_rate", {})[names[i]] = rate
                self.log(f"val/boundary_rate_{names[i]}", rate, add_dataloader_idx=False)
        if record["bpb"]:
            mean = sum(record["bpb"].values()) / len(record["bpb"])
            self.log("val/bpb", mean, prog_bar=True, add_dataloader_idx=False)
            self.history.append(record)
        self._clock = time.perf_counter()  # validation time is not training time

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the clock, the bytes seen and the validation history across a resume."""
        checkpoint["tokenshift"] = {"elapsed": self._elapsed, "seen_bytes": self._seen_bytes, "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("tokenshift", {})
        self._elapsed = state.get("elapsed", 0.0)
        self._seen_bytes = state.get("seen_bytes", 0.0)
        self.history = list(state.get("history", []))

    def configure_optimizers(self) -> dict:
        hp = self.hparams
        decay = [p for p in self.net.parameters() if p.requires_grad and p.dim() >= 2]
        rest = [p for p in self.net.parameters() if p.requires_grad and p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": hp.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=hp.lr, betas=tuple(hp.betas))
        total = self.trainer.max_steps if self._trainer is not None else -1
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, hp.warmup_steps, total,
                                                                              hp.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# checkpoints hold the config dataclasses in their hyperparameters: let `torch.load(weights_only=True)` read them
torch.serialization.add_safe_globals(registry.config_classes())
