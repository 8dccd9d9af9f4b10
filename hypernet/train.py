"""Training a ZeTT hypernetwork with Lightning: `train_hypernet(...)` and `tokenshift train-hypernet`.

    tokenshift train-hypernet --config hypernet/configs/small.yaml
    tokenshift train-hypernet --config hypernet/configs/smollm2.yaml --ckpt_path last   # resume after a kill

Each step (ZeTT, `train.py` of `bminixhofer/zett`): sample a UnigramLM
tokenizer from the recent batches' text (`sampling.py`), tokenize the batch
with it, predict input and output rows for all of its tokens, and run the
*frozen* base LM on them. Loss = the LM's next-token cross-entropy over the
sampled vocabulary + `lexical_loss_weight` (0.5) x the squared distance of
the predicted rows to the base rows for tokens that are one base token
(divided by the base rows' mean norm, as the reference). Special tokens take
the base rows. The first `identity_steps` steps only teach the network to
reproduce base rows from single-piece inputs (the identity warm-up).
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
rows and LM are rebuilt from the config); the data stream and each step's
tokenizer noise are functions of (seed, step), so a resumed run continues at
the same step with the same data. The trained network is written with
`save_pretrained` to `--export_dir` (default `<default_root_dir>/hypernet`).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterator, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from tokenshift.bytelevel import ByteVocab

from .model import HyperNetwork
from .sampling import TokenizerSampler


def load_base(base_model: str, base_tokenizer: Optional[str] = None) -> tuple[Any, Any]:
    """(model, tokenizer): `smollm2`, or a local HF model folder (tokenizer from `base_tokenizer` or the folder)."""
    from tokenshift.common.assets import load_model, load_tokenizer

    model, tok = load_model(base_model)
    if base_tokenizer:
        tok = load_tokenizer(base_tokenizer)
    return model, tok


# -- data -------------------------------------------------------------------------------------------


class TextStream(torch.utils.data.IterableDataset):
    """Endless batches of text windows; batch k is a pure function of (seed, k, rank), so resuming is exact.

    Under data parallelism each rank draws its own windows (Lightning does not shard an
    IterableDataset: without the rank every process would train on the same text); rank 0's
    stream is the single-process one."""

    def __init__(self, corpus: list[str], batch_size: int, text_chars: int, seed: int, start: int = 0,
                 rank: int = 0):
        self.corpus, self.batch_size, self.text_chars, self.seed, self.start = corpus, batch_size, text_chars, seed, start
        self.rank = rank
        self.weights = np.array([len(t) for t in corpus], dtype=np.float64)
        self.weights /= self.weights.sum()

    def batch(self, k: int) -> list[str]:
        """The texts of batch `k` (negative k: the warm-up batches that first fill the sampler's queue)."""
        key = [self.seed, k + (1 << 40)] + ([self.rank] if self.rank else [])
        rng = np.random.default_rng(key)
        out = []
        for _ in range(self.batch_size):
            doc = self.corpus[int(rng.choice(len(self.corpus), p=self.weights))]
            lo = int(rng.integers(0, max(1, len(doc) - self.text_chars)))
            if lo:  # start at a line start, as documents do
                nl = doc.find("\n", lo, lo + self.text_chars // 2)
                lo = nl + 1 if nl >= 0 else lo
            out.append(doc[lo : lo + self.text_chars])
        return out

    def __iter__(self) -> Iterator[list[str]]:
        k = self.start
        while True:
            yield self.batch(k)
            k += 1


class HyperNetData(L.LightningDataModule):
    """Text for hypernet training: UTF-8 files (or `texts` in memory), cut into windows of `text_chars`.

    `files` are paths or `builtin:en` / `builtin:code`. Without `files`, `languages` are read from the
    shared corpus (`<lang>.txt`); where it is absent, `en` and `code` fall back on the built-in texts
    (the other languages are skipped) and it says so.
    """

    def __init__(self, files: Optional[list[str]] = None, batch_size: int = 32, text_chars: int = 2048,
                 seed: int = 0, texts: Optional[list[str]] = None, languages: Optional[list[str]] = None):
        super().__init__()
        self.files, self.batch_size, self.text_chars, self.seed = files or [], batch_size, text_chars, seed
        self.languages = list(languages or ["en", "code"])
        self._texts = texts
        if batch_size < 1 or text_chars < 16:
            raise ValueError(f"batch_size must be >= 1 and text_chars >= 16, got {batch_size} and {text_chars}")

    def sources(self) -> list[str]:
        """The files (or built-in names) the corpus is read from."""
        return [str(f) for f in self.files] if self.files else default_sources(self.languages)

    def corpus(self) -> list[str]:
        if self._texts is None:
            from tokenshift.bytelevel.corpus import resolve_text

            self._texts = [resolve_text(Path(f).expanduser() if not f.startswith("builtin:") else f)[1].decode("utf-8")
                           for f in self.sources()]
        texts = [t for t in self._texts if t]
        if not texts:
            raise ValueError("the training texts are all empty")
        return texts

    def stream(self, start: int = 0, rank: int = 0) -> TextStream:
        return TextStream(self.corpus(), self.batch_size, self.text_chars, self.seed, start, rank)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        trainer = self.trainer
        start = trainer.global_step if trainer is not None else 0  # restored before this is called
        rank = trainer.global_rank if trainer is not None else 0
        return torch.utils.data.DataLoader(self.stream(start, rank), batch_size=None, num_workers=0)


def default_sources(languages: list[str]) -> list[str]:
    """`<lang>.txt` of the shared corpus for each language; without it, the built-in texts (said so)."""
    from tokenshift.bytelevel.corpus import BUILTIN_TEXTS, shared_data_dir

    folder = shared_data_dir()
    if folder is not None:
        return [str(folder / f"{lang}.txt") for lang in languages]
    usable = [lang for lang in languages if lang in BUILTIN_TEXTS]
    if not usable:
        raise ValueError(f"no training text: ../shared/data was not found and languages {languages} have no "
                         "built-in text; set data.files (UTF-8 text files) or TOKENSHIFT_DATA")
    skipped = [lang for lang in languages if lang not in usable]
    print(f"hypernet data: ../shared/data was not found: training on {', '.join('builtin:' + x for x in usable)}"
          + (f" ({', '.join(skipped)} skipped: no built-in text)" if skipped else "")
          + "; pass --data.files '[FILE, ...]' to train on your own text", flush=True)
    return ["builtin:" + lang for lang in usable]


# -- the LightningModule ----------------------------------------------------------------------------


class HyperNetModule(L.LightningModule):
    """The hypernet, the frozen base LM (not a submodule: never checkpointed), the tokenizer sampler."""

    def __init__(self, base_model: str = "smollm2", base_tokenizer: Optional[str] = None,
                 num_layers: int = 3, max_pieces: int = 7, hidden_size: int = 0, intermediate_size: int = 0,
                 sampled_vocab_size: int = 32768, queue_size: int = 16, stride: int = 4,
                 noise_mean: float = 1e-5, noise_sigma: float = 4.0, block_size: int = 128,
                 identity_steps: int = 10000, identity_batch: int = 16384, lexical_loss_weight: float = 0.5,
                 identity_learning_rate: float = 3e-4, learning_rate: float = 6e-5, warmup_steps: int = 10000,
                 lr_alpha: float = 0.1, weight_decay: float = 0.01, adam_beta2: float = 0.95, seed: int = 0,
                 _objects: Optional[tuple[Any, Any]] = None):
        super().__init__()
        self.save_hyperparameters(ignore=["_objects"])
        model, tok = _objects if _objects is not None else load_base(base_model, base_tokenizer)
        model.eval().requires_grad_(False)
        object.__setattr__(self, "base", model)  # frozen: not registered, so not in state_dict or optimizer
        self.hypernet = HyperNetwork.from_base(model, tok, seed=seed, num_layers=num_layers, max_pieces=max_pieces,
                                               hidden_size=hidden_size, intermediate_size=intermediate_size)
        vocab = self.hypernet.vocab
        specials = [t for _, t in sorted(vocab.special.items())]
        start = next((t for t in specials if t == "<|endoftext|>"), None) or vocab.special.get(
            vocab.bos_id if vocab.bos_id is not None else vocab.eos_id, "<|endoftext|>")
        self.specials = tuple([start] + [t for t in specials if t != start])  # the document start is id 0
        self.sampler = TokenizerSampler(sampled_vocab_size, queue_size, stride=stride, noise_mean=noise_mean,
                                        noise_sigma=noise_sigma, specials=self.specials, seed=seed)
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
            for k in range(step - self.hparams.queue_size + 1, step):
                self.sampler.push(stream.batch(k))

    def configure_optimizers(self) -> Any:
        h = self.hparams
        decay = [p for n, p in self.hypernet.named_parameters() if p.ndim >= 2 and "positions" not in n]
        rest = [p for n, p in self.hypernet.named_parameters() if not (p.ndim >= 2 and "positions" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": h.weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=1.0, betas=(0.9, h.adam_beta2))
        total = self.trainer.max_steps if self.trainer and self.trainer.max_steps > 0 else 10 * h.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: learning_rate_at(s, h, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- the two losses
    def identity_loss(self, step: int) -> torch.Tensor:
        """Reproduce base rows from single-piece inputs: the squared L2 distance, relative to the rows'
        mean squared norm (the reference leaves it absolute; relative, an untied head whose rows are
        larger than the input rows does not drown them)."""
        gen = torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + step)
        n = min(self.hparams.identity_batch, len(self._ids))
        ids = self._ids[torch.randperm(len(self._ids), generator=gen)[:n].to(self._ids.device)]
        pred_in, pred_out = self.hypernet(ids[:, None], torch.ones(n, 1, dtype=torch.bool, device=ids.device))
        loss = relative_distance(pred_in, self.hypernet.rows_in[ids])
        if pred_out is not None:
            loss = (loss + relative_distance(pred_out, self.hypernet.rows_out[ids])) / 2
        return loss

    def lm_loss(self, texts: list[str], step: int) -> dict[str, torch.Tensor]:
        """The frozen LM's loss on `texts` in a freshly sampled tokenizer, plus the lexical loss."""
        h = self.hparams
        if not self.sampler.queue_length:  # first LM step of this run (fresh or resumed)
            self._fill_queue(step)
        self.sampler.rng = np.random.default_rng([h.seed, step])  # each step's noise depends on the step only
        tok = self.sampler.sample(texts)
        vocab = ByteVocab.from_tokenizer(tok)
        ids, n_bytes = encode_batch(vocab, texts, h.block_size, self.device)  # (B, T+1), start token first
        pieces = [p or b"" for p in vocab.pieces]
        piece_ids, mask = self.hypernet.surface_forms(pieces)
        rows_in, rows_out = self.hypernet(piece_ids, mask)  # (V, d) each
        special = torch.tensor(sorted(vocab.special), device=self.device)
        base_special = torch.tensor([self._base_special(vocab.special[i]) for i in sorted(vocab.special)],
                                    device=self.device)
        rows_in = rows_in.index_copy(0, special, self.hypernet.rows_in[base_special])
        if rows_out is not None:
            rows_out = rows_out.index_copy(0, special, self.hypernet.rows_out[base_special])
        head = rows_in if rows_out is None else rows_out
        inputs, labels = ids[:, :-1], ids[:, 1:].clone()
        attention = inputs >= 0
        labels[labels < 0] = -100
        hidden = self.base.base_model(inputs_embeds=F.embedding(inputs.clamp_min(0), rows_in),
                                      attention_mask=attention.long()).last_hidden_state  # (B, T, d)
        logits = hidden @ head.T  # (B, T, V): the memory peak, see the module docstring
        lm = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
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

    def _base_special(self, text: str) -> int:
        v = self.hypernet.vocab
        same = next((i for i, t in v.special.items() if t == text and i < self.hypernet.config.base_vocab), None)
        return same if same is not None else (v.eos_id if v.eos_id is not None else 0)

    def training_step(self, texts: list[str], batch_idx: int) -> torch.Tensor:
        step = self.global_step
        if step < self.hparams.identity_steps:
            loss = self.identity_loss(step)
            self.log("train/identity_loss", loss, prog_bar=True)
            return loss
        parts = self.lm_loss(texts, step)
        loss = parts["lm"] + self.hparams.lexical_loss_weight * parts["lexical"]
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bpb", parts["bits_per_byte"], prog_bar=True)
        for name in ("lm", "lexical", "overlap", "vocab"):
            self.log(f"train/{name}", parts[name])
        return loss


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


def learning_rate_at(step: int, h: Any, total: int) -> float:
    """The reference's schedule: warm up to identity_learning_rate over the identity steps, then warm up
    to learning_rate over warmup_steps and cosine-decay to lr_alpha x learning_rate at `total` steps."""
    if step < h.identity_steps:
        return h.identity_learning_rate * (step + 1) / h.identity_steps
    s = step - h.identity_steps
    if s < h.warmup_steps:
        return h.learning_rate * (s + 1) / h.warmup_steps
    span = max(1, total - h.identity_steps - h.warmup_steps)
    progress = min(1.0, (s - h.warmup_steps) / span)
    return h.learning_rate * (h.lr_alpha + (1 - h.lr_alpha) * 0.5 * (1 + math.cos(math.pi * progress)))


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


def train_hypernet(base_model: Any, base_tokenizer: Any, corpus: list[str], out_dir: str | Path, steps: int = 1000,
                   batch_size: int = 8, text_chars: int = 1024, resume: bool = True, max_time: Optional[str] = None,
                   checkpoint_every: int = 100, progress: bool = True, accelerator: str = "auto",
                   **options: Any) -> HyperNetwork:
    """Train a hypernet for `base_model` (a HF causal LM) and its tokenizer on `corpus` (texts, or paths of
    UTF-8 files); returns it, also saved to `out_dir/hypernet`. Checkpoints go to `out_dir/checkpoints`;
    with `resume` a run continues from `last.ckpt` there. `options`: `HyperNetModule` arguments
    (`identity_steps`, `sampled_vocab_size`, `learning_rate`, ...). `max_time`: "DD:HH:MM:SS"."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    texts = [Path(c).read_text("utf-8") if _is_file(c) else c for c in corpus]
    out = Path(out_dir)
    module = HyperNetModule(base_model="<object>", _objects=(base_model, base_tokenizer), **options)
    data = HyperNetData(batch_size=batch_size, text_chars=text_chars, seed=options.get("seed", 0), texts=texts)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=checkpoint_every, save_last=True)
    trainer = L.Trainer(max_steps=steps, max_time=max_time, gradient_clip_val=0.1, accelerator=accelerator, devices=1,
                        default_root_dir=out, logger=False, enable_progress_bar=progress,
                        enable_model_summary=False, callbacks=[ckpt, ExportHypernet(out / "hypernet")])
    last = out / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume and last.exists() else None)
    module.hypernet.eval()
    return module.hypernet


def _is_file(value: Any) -> bool:
    return isinstance(value, Path) or (isinstance(value, str) and len(value) < 4096 and "\n" not in value
                                       and re.fullmatch(r"[^\0]+", value) is not None and Path(value).is_file())


def main(argv: Optional[list[str]] = None) -> int:
    """`tokenshift train-hypernet`: LightningCLI over HyperNetModule and HyperNetData, configured by YAML.

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

    cli = build_cli(HyperNetCLI, HyperNetModule, HyperNetData, argv, "tokenshift train-hypernet",
                    __doc__.splitlines()[0])
    trainer = cli.trainer
    export = Path(cli.config.export_dir) if cli.config.export_dir else Path(trainer.default_root_dir) / "hypernet"
    trainer.callbacks.append(ExportHypernet(export))
    trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.ckpt_path)
    if trainer.is_global_zero:
        print(f"hypernet written to {export}; use it with: tokenshift transplant --method zett --hypernet {export} ...")
    return 0
