"""Rows in memory and the seeded, resumable stream of batches over them.

Shared by `models` (training from scratch) and `transplant` (recovery finetune,
distillation): the same stream makes a resumed or repeated run read exactly the
batches of an uninterrupted one.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


class Rows(Dataset):
    """Packed rows held in memory: (inputs, targets), (N, T) each, and optionally a language id per row (N,)."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, languages: np.ndarray | None = None):
        self.inputs, self.targets = torch.from_numpy(inputs), torch.from_numpy(targets)
        self.languages = None if languages is None else torch.from_numpy(np.asarray(languages, dtype=np.int64))
        if self.languages is not None and self.languages.shape != (len(self.inputs),):
            raise ValueError(f"one language id per row: {len(self.inputs)} rows, {tuple(self.languages.shape)} ids")

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"input": self.inputs[i], "target": self.targets[i]}
        if self.languages is not None:
            item["language"] = self.languages[i]
        return item


class StepBatches(Sampler[list[int]]):
    """Endless batches of row indices: epoch e is a permutation seeded by (seed, e); starts at batch `start`.

    Under data parallelism (`world_size` > 1) step b's global batch is the next `batch_size * world_size`
    indices of that stream and rank r takes the r-th slice: ranks see disjoint rows, the stream does not
    depend on the rank, and resuming at step b is the same `start` on every rank. (Lightning cannot
    inject its DistributedSampler into a batch sampler; `tokenshift train` sets `use_distributed_sampler`
    off and `TextData` passes the rank.)
    """

    def __init__(self, n_rows: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank {rank}, world_size {world_size}")
        self.n, self.batch_size, self.seed, self.start = n_rows, batch_size, seed, start
        self.rank, self.world_size = rank, world_size

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[list[int]]:
        size = self.batch_size * self.world_size
        b = self.start
        while True:
            epoch, offset = divmod(b * size, self.n)
            order = self._order(epoch)
            idx = []
            while len(idx) < size:  # a batch may run into the next epoch
                take = order[offset : offset + size - len(idx)]
                idx += take.tolist()
                epoch, offset = epoch + 1, 0
                order = self._order(epoch)
            yield idx[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            b += 1
