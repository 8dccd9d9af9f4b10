"""Training a ZeTT hypernetwork with Lightning: `train_hypernet(...)` and `tokenshift train-hypernet`.

    tokenshift train-hypernet --config hypernet/configs/small.yaml
    tokenshift train-hypernet --config hypernet/configs/smollm2.yaml --ckpt_path last   # resume after a kill

Each step (ZeTT, `train.py` of `bminixhofer/zett`): sample a UnigramLM
tokenizer from the recent batches' text (`sampling.py`; the text: `data.py`),
tokenize the batch with it, predict input and output rows for all of its
tokens, and run the *frozen* base LM on them. Loss = the LM's next-token
cross-entropy over the sampled vocabulary + `lexical_loss_weight` (0.5) x the
squared distance of the predicted rows to the base rows for tokens that are
one base token (divided by the base rows' mean norm, as the reference).
Special tokens take the base rows a transplant gives them
(`HyperNetwork.special_rows`). The first `identity_steps` steps only teach the
network to reproduce base rows from single-piece inputs (the identity warm-up).
Schedule as the reference: linear warm-up to `identity_learning_rate` over the
identity steps, then warm-up to `learning_rate` over `warmup_steps` and cosine
decay to `lr_alpha` x it; AdamW (b2 0.95, weight decay 0.01); the configs clip
gradients at 0.1.

Memory. What dominates is the sampled vocabulary's output side: the logits
(B, T, V) and their gradient, 2 x B x T x V x 4 bytes in fp32, i.e. 4 GiB at
the paper's B=128, T=128, V=32768, plus the hypernet's activations over all V
tokens (V x max_pieces x hidden x ~(10 x layers) floats: ~1.3 GiB at V=32768,
7 pieces, 576 wide). The base LM's own activations are those of ordinary
training at (B, T); its weights need no optimizer state (frozen). On a CPU or
a small GPU lower `sampled_vocab_size` first (4096-8192), then the batch.

Resuming: checkpoints hold the hypernet and optimizer state only (the base
rows and LM, `FrozenBase`, are rebuilt from the config); the data stream and each step's
tokenizer noise are functions of (seed, step), so a resumed run continues at
the same step with the same data. The trained network is written with
`save_pretrained` to `--export_dir` (default `<default_root_dir>/hypernet`).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from tokenshift.bytelevel import ByteVocab
from tokenshift.common.packing import IGNORE
from tokenshift.common.training import lr_factor

from .data import HyperNetData, default_sources
from .model import HyperNetwork
from .sampling import TokenizerSampler


# -- the LightningModule ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HyperNetTrainConfig:
    """How a hypernet trains (`model.config` in the YAML configs); the defaults are the reference's.
    The first four shape the network (`HyperNetConfig`; 0 = its default)."""

    num_layers: int = 3
    max_pieces: int = 7
    hidden_size: int = 0
    intermediate_size: int = 0
    sampled_vocab_size: int = 32768  # each step's sampled tokenizer: the memory knob (module docstring)
    queue_size: int = 16  # batches whose text the sampler draws its pieces from
    stride: int = 4
    noise_mean: float = 1e-5
    noise_sigma: float = 4.0
    block_size: int = 128  # tokens read per text window
    identity_steps: int = 10000
    identity_batch: int = 16384  # base tokens per identity step
    lexical_loss_weight: float = 0.5
    identity_learning_rate: float = 3e-4
    learning_rate: float = 6e-5
    warmup_steps: int = 10000
    lr_alpha: float = 0.1
    weight_decay: float = 0.01
    adam_beta2: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        least = {"num_layers": 1, "max_pieces": 1, "hidden_size": 0, "intermediate_size": 0, "queue_size": 1,
                 "stride": 1, "block_size": 1, "identity_steps": 0, "identity_batch": 1, "warmup_steps": 0,
                 "noise_mean": 0, "noise_sigma": 0, "lexical_loss_weight": 0, "weight_decay": 0}
        wrong = [f"{k} must be >= {v}, got {getattr(self, k)}" for k, v in least.items() if getattr(self, k) < v]
        if self.sampled_vocab_size <= 256:
            wrong.append(f"sampled_vocab_size must be > 256 (the 256 bytes come first), got "
                         f"{self.sampled_vocab_size}; use 4096-8192 on a CPU, 32768 as the paper")
        wrong += [f"{k} must be > 0, got {getattr(self, k)}" for k in ("identity_learning_rate", "learning_rate")
                  if not getattr(self, k) > 0]
        if not 0 <= self.lr_alpha <= 1:
            wrong.append(f"lr_alpha (the last step's fraction of learning_rate) must be in [0, 1], got {self.lr_alpha}")
        if not 0 <= self.adam_beta2 < 1:
            wrong.append(f"adam_beta2 must be in [0, 1), got {self.adam_beta2} (the reference: 0.95)")
        if wrong:
            raise ValueError(f"hypernet training config: {'; '.join(wrong)}. Set them under model.config in "
                             "the YAML (--model.config.NAME), or as train_hypernet options")


class FrozenBase:
    """The base LM, frozen, held outside the module tree: Lightning never checkpoints, optimizes or
    `.train()`s it, so checkpoints hold the hypernet only and the base is rebuilt from the config."""

    def __init__(self, model: Any):
        self.model = model.eval().requires_grad_(False)

    def to(self, device: Any) -> None:
        self.model.to(device)

    def hidden(self, ids: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, d) of the LM reading `ids` (B, T; -1 = padding) with input rows `rows`."""
        return self.model.base_model(inputs_embeds=F.embedding(ids.clamp_min(0), rows),
                                     attention_mask=(ids >= 0).long()).last_hidden_state


class HyperNetModule(L.LightningModule):
    """The hypernet for a loaded base LM and its tokenizer, the frozen base, the tokenizer sampler.
    (The CLI builds it by the base's name: `hypernet_module`.)"""

    def __init__(self, base_model: Any, base_tokenizer: Any, config: HyperNetTrainConfig = HyperNetTrainConfig()):
        super().__init__()
        self.config = c = config
        self.save_hyperparameters(asdict(config))
        self.base = FrozenBase(base_model)
        shape = {k: getattr(c, k) for k in ("num_layers", "max_pieces", "hidden_size", "intermediate_size")}
        self.hypernet = HyperNetwork.from_base(base_model, base_tokenizer, seed=c.seed, **shape)
        vocab = self.hypernet.vocab
        try:
            start = vocab.special.get(vocab.start_id, "<|endoftext|>")
        except ValueError:  # no <|endoftext|>, BOS or EOS: the sampled tokenizers bring their own
            start = "<|endoftext|>"
        self.specials = (start, *[t for _, t in sorted(vocab.special.items()) if t != start])  # the start is id 0
        self.sampler = TokenizerSampler(c.sampled_vocab_size, c.queue_size, stride=c.stride, noise_mean=c.noise_mean,
                                        noise_sigma=c.noise_sigma, specials=self.specials, seed=c.seed)
        self._ids = self.hypernet.base_ids()

    # -- plumbing
    def on_fit_start(self) -> None:
        self.base.to(self.device)
        self._ids = self._ids.to(self.device)

    def _fill_queue(self, step: int) -> None:
        """ZeTT fills the sampler's queue before training: here with the batches just before `step`."""
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if isinstance(data, HyperNetData):
            stream = data.stream()
            for k in range(step - self.config.queue_size + 1, step):
                self.sampler.push(stream.batch(k))

    def configure_optimizers(self) -> Any:
        c = self.config
        decay = [p for n, p in self.hypernet.named_parameters() if p.ndim >= 2 and "positions" not in n]
        rest = [p for n, p in self.hypernet.named_parameters() if not (p.ndim >= 2 and "positions" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=1.0, betas=(0.9, c.adam_beta2))
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps > 0 else 10 * c.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: learning_rate_at(s, c, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- the two losses
    def identity_loss(self, step: int) -> torch.Tensor:
        """Reproduce base rows from single-piece inputs: the squared L2 distance, relative to the rows'
        mean squared norm (the reference leaves it absolute; relative, an untied head whose rows are
        larger than the input rows does not drown them)."""
        gen = torch.Generator().manual_seed(self.config.seed * 1_000_003 + step)
        n = min(self.config.identity_batch, len(self._ids))
        ids = self._ids[torch.randperm(len(self._ids), generator=gen)[:n].to(self._ids.device)]
        pred_in, pred_out = self.hypernet(ids[:, None], torch.ones(n, 1, dtype=torch.bool, device=ids.device))
        loss = relative_distance(pred_in, self.hypernet.rows_in[ids])
        if pred_out is not None:
            loss = (loss + relative_distance(pred_out, self.hypernet.rows_out[ids])) / 2
        return loss

    def lm_loss(self, texts: list[str], step: int) -> dict[str, torch.Tensor]:
        """The frozen LM's loss on `texts` in a freshly sampled tokenizer, plus the lexical loss."""
        c = self.config
        if not self.sampler.queue_length:  # first LM step of this run (fresh or resumed)
            self._fill_queue(step)
        self.sampler.rng = np.random.default_rng([c.seed, step])  # each step's noise depends on the step only
        tok = self.sampler.sample(texts)
        vocab = ByteVocab.from_tokenizer(tok)
        ids, n_bytes = encode_batch(vocab, texts, c.block_size, self.device)  # (B, T+1), start token first
        pieces = [p or b"" for p in vocab.pieces]
        piece_ids, mask = self.hypernet.surface_forms(pieces)
        rows_in, rows_out = self.hypernet(piece_ids, mask)  # (V, d) each
        special_ids, special_in, special_out = self.hypernet.special_rows(vocab, tok)
        special = torch.tensor(special_ids, dtype=torch.long, device=self.device)
        rows_in = rows_in.index_copy(0, special, special_in)
        if rows_out is not None:
            rows_out = rows_out.index_copy(0, special, special_out)
        head = rows_in if rows_out is None else rows_out
        inputs, labels = ids[:, :-1], ids[:, 1:].clone()
        labels[labels < 0] = IGNORE
        logits = self.base.hidden(inputs, rows_in) @ head.T  # (B, T, V): the memory peak, see the module docstring
        lm = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum")
        n_tokens = (labels >= 0).sum().clamp_min(1)
        # lexical loss: tokens that are exactly one base token should get that token's rows
        single = mask.sum(1).eq(1) & piece_ids[:, 0].lt(self.hypernet.config.base_vocab)
        single[special] = False
        lexical = rows_in.new_zeros(())
        if single.any():
            target = piece_ids[single, 0]
            lexical = lexical_distance(rows_in[single], self.hypernet.rows_in[target])
            if rows_out is not None:
                lexical = (lexical + lexical_distance(rows_out[single], self.hypernet.rows_out[target])) / 2
        return {"lm": lm / n_tokens, "lexical": lexical, "bits_per_byte": lm.detach() / math.log(2) / max(1, n_bytes),
                "overlap": single.float().mean(), "vocab": torch.tensor(float(len(pieces)))}

    def training_step(self, texts: list[str], batch_idx: int) -> torch.Tensor:
        step = self.global_step
        if step < self.config.identity_steps:
            loss = self.identity_loss(step)
            self.log("train/identity_loss", loss, prog_bar=True)
            return loss
        parts = self.lm_loss(texts, step)
        loss = parts["lm"] + self.config.lexical_loss_weight * parts["lexical"]
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bpb", parts["bits_per_byte"], prog_bar=True)
        for name in ("lm", "lexical", "overlap", "vocab"):
            self.log(f"train/{name}", parts[name])
        return loss


def hypernet_module(base_model: str = "smollm2", base_tokenizer: Optional[str] = None,
                    config: HyperNetTrainConfig = HyperNetTrainConfig()) -> HyperNetModule:
    """The hypernet to train, for a base LM by name: `smollm2` or a local HF model folder (the tokenizer
    from `base_tokenizer`, else the folder's). The names go into the checkpoints' hyperparameters."""
    from tokenshift.common.assets import load_model, load_tokenizer

    model, tok = load_model(base_model)
    module = HyperNetModule(model, load_tokenizer(base_tokenizer) if base_tokenizer else tok, config)
    module.save_hyperparameters({"base_model": base_model, "base_tokenizer": base_tokenizer, **asdict(config)})
    return module


def lexical_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ZeTT's lexical loss: mean squared L2 distance over tokens, divided by the targets' mean norm."""
    return pred.sub(target).square().sum(-1).mean() / target.norm(dim=1).mean().clamp_min(1e-8)


def relative_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared L2 distance over tokens / the targets' mean squared norm (0 = exact, 1 = predicting 0)."""
    return pred.sub(target).square().sum(-1).mean() / target.square().sum(-1).mean().clamp_min(1e-12)


def encode_batch(vocab: ByteVocab, texts: list[str], block_size: int, device: Any) -> tuple[torch.Tensor, int]:
    """(ids (B, T+1) with the document start (id 0) first and -1 padding, bytes covered by the kept tokens)."""
    rows, n_bytes = [], 0
    for text in texts:
        ids = vocab.encode(text.encode("utf-8"), strict=False)[:block_size]
        n_bytes += sum(len(vocab.pieces[i] or b"") for i in ids)
        rows.append([0] + ids)
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, : len(row)] = torch.tensor(row)
    return out.to(device), n_bytes


def learning_rate_at(step: int, c: HyperNetTrainConfig, total: int) -> float:
    """The reference's schedule as two `lr_factor` phases: warm-up to identity_learning_rate over the
    identity steps, then warm-up to learning_rate over warmup_steps and cosine decay to lr_alpha x it at
    `total`. With total <= identity + warmup steps (only without max_steps: total is then 10 x warmup_steps)
    nothing decays: learning_rate holds after the warm-up."""
    if step < c.identity_steps:
        return c.identity_learning_rate * lr_factor(step, c.identity_steps, c.identity_steps, 1.0)
    return c.learning_rate * lr_factor(step - c.identity_steps, c.warmup_steps, total - c.identity_steps, c.lr_alpha)


# -- entry points -----------------------------------------------------------------------------------


class ExportHypernet(L.Callback):
    """Write the hypernet with `save_pretrained` when training ends."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            module.hypernet.save_pretrained(self.path)
            info = {"global_step": trainer.global_step, "hparams": {k: v for k, v in module.hparams.items()}}
            (self.path / "training.json").write_text(json.dumps(info, indent=2, default=str) + "\n")


def train_hypernet(base_model: Any, base_tokenizer: Any, texts: Optional[list[str]] = None,
                   out_dir: str | Path = "runs/hypernet", *, files: Optional[list[str | Path]] = None,
                   steps: int = 1000, batch_size: int = 8, text_chars: int = 1024, resume: bool = True,
                   max_time: Optional[str] = None, checkpoint_every: int = 100, progress: bool = True,
                   accelerator: str = "auto", config: Optional[HyperNetTrainConfig] = None,
                   **options: Any) -> HyperNetwork:
    """Train a hypernet for `base_model` (a HF causal LM) and its tokenizer on `texts` (strings) and `files`
    (UTF-8 text files, `builtin:en`, `builtin:code`); returns it, also saved to `out_dir/hypernet`.
    Checkpoints go to `out_dir/checkpoints`; with `resume` a run continues from `last.ckpt` there.
    `config` says how it trains, `options` override its fields (`identity_steps`, `sampled_vocab_size`,
    ...). `max_time`: "DD:HH:MM:SS"."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    if not texts and not files:
        raise ValueError("train_hypernet: no training text; pass texts=[str, ...] and/or files=[path, ...]")
    if any(not isinstance(t, str) for t in texts or []):
        raise TypeError("train_hypernet: texts= takes strings; pass file paths as files=[...]")
    known = [f.name for f in fields(HyperNetTrainConfig)]
    if set(options) - set(known):
        raise TypeError(f"unknown train_hypernet option(s) {sorted(set(options) - set(known))}; choose from {known}")
    config = replace(config or HyperNetTrainConfig(), **options)
    out = Path(out_dir)
    module = HyperNetModule(base_model, base_tokenizer, config)
    data = HyperNetData(files, batch_size=batch_size, text_chars=text_chars, seed=config.seed, texts=texts)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=checkpoint_every, save_last=True)
    trainer = L.Trainer(max_steps=steps, max_time=max_time, gradient_clip_val=0.1, accelerator=accelerator, devices=1,
                        default_root_dir=out, logger=False, enable_progress_bar=progress,
                        enable_model_summary=False, callbacks=[ckpt, ExportHypernet(out / "hypernet")])
    last = out / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume and last.exists() else None)
    module.hypernet.eval()
    return module.hypernet


def main(argv: Optional[list[str]] = None) -> int:
    """`tokenshift train-hypernet`: LightningCLI over `hypernet_module` and HyperNetData, configured by YAML.

    The run folder works as for `tokenshift train` (`models/train.py`: checkpoints, logs and the
    exported hypernet follow `--trainer.default_root_dir`; `--ckpt_path last` resumes only that
    run), and the training text is checked before the base model loads.
    """
    from tokenshift.common.training import RunFolderCLI, build_cli

    class HyperNetCLI(RunFolderCLI):
        run_name = "hypernet"
        export_help = "where the trained hypernet is saved (default <run folder>/hypernet)"

        def before_instantiate_classes(self) -> None:
            super().before_instantiate_classes()
            data = self.config.data
            files = [str(f) for f in data.files] if data.get("files") else default_sources(data.get("languages")
                                                                                                 or ["en", "code"])
            from tokenshift.bytelevel.corpus import resolve_text

            for f in files:  # a missing file is found now, not after the base model has loaded
                try:
                    resolve_text(f if f.startswith("builtin:") else Path(f).expanduser())
                except (OSError, ValueError) as err:
                    raise ValueError(f"--data.files: {err}") from None
            data.files = files

    cli = build_cli(HyperNetCLI, hypernet_module, HyperNetData, argv, "tokenshift train-hypernet",
                    __doc__.splitlines()[0])
    trainer = cli.trainer
    export = Path(cli.config.export_dir) if cli.config.export_dir else Path(trainer.default_root_dir) / "hypernet"
    trainer.callbacks.append(ExportHypernet(export))
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    if trainer.is_global_zero:
        print(f"hypernet written to {export}; use it with: tokenshift transplant --method zett --hypernet {export} ...")
    return 0
