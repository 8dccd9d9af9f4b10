"""What a hypernet trains on: text windows, drawn as a pure function of (seed, step, rank) so that a
resumed run reads the same text (`train.py` trains on them)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import lightning as L
import numpy as np
import torch


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
    """Text for hypernet training: `texts` in memory and UTF-8 `files`, cut into windows of `text_chars`.

    `files` are paths or `builtin:en` / `builtin:code`. With neither, `languages` are read from the
    shared corpus (`<lang>.txt`); where it is absent, `en` and `code` fall back on the built-in texts
    (the other languages are skipped) and it says so.
    """

    def __init__(self, files: Optional[list[str]] = None, batch_size: int = 32, text_chars: int = 2048,
                 seed: int = 0, texts: Optional[list[str]] = None, languages: Optional[list[str]] = None):
        super().__init__()
        self.files, self.batch_size, self.text_chars, self.seed = files or [], batch_size, text_chars, seed
        self.languages = list(languages or ["en", "code"])
        self.texts, self._corpus = texts, None
        if batch_size < 1 or text_chars < 16:
            raise ValueError(f"batch_size must be >= 1 and text_chars >= 16, got {batch_size} and {text_chars}")

    def sources(self) -> list[str]:
        """The files (or built-in names) read: `files`, else the languages' unless `texts` were given."""
        if self.files:
            return [str(f) for f in self.files]
        return [] if self.texts is not None else default_sources(self.languages)

    def corpus(self) -> list[str]:
        if self._corpus is None:
            from tokenshift.bytelevel.corpus import resolve_text

            read = [resolve_text(f if f.startswith("builtin:") else Path(f).expanduser())[1].decode("utf-8")
                    for f in self.sources()]
            self._corpus = list(self.texts or []) + read
        texts = [t for t in self._corpus if t]
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
