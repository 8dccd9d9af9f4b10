"""Nearest neighbours by inner product (cosine over normalised vectors), with FAISS.

FAISS is imported lazily: `faiss-cpu` (extra `ann`) or `faiss-gpu` (extra
`gpu`, the same `faiss` module; never both in one environment). With a GPU
build and CUDA present the index moves to the GPU. Without FAISS an exact
torch matrix product gives the same answer for a flat index (slower on big
vocabularies), so nothing breaks on a bare install.
"""
from __future__ import annotations

import numpy as np
import torch


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


class InnerProductIndex:
    """Exact top-k inner-product search over `vectors` (n, d)."""

    def __init__(self, vectors: np.ndarray, use_gpu: bool | None = None):
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.faiss = _faiss()
        self.index = None
        if self.faiss is not None:
            index = self.faiss.IndexFlatIP(self.vectors.shape[1])
            gpu = use_gpu if use_gpu is not None else torch.cuda.is_available()
            if gpu and hasattr(self.faiss, "StandardGpuResources") and self.faiss.get_num_gpus() > 0:
                self._resources = self.faiss.StandardGpuResources()
                index = self.faiss.index_cpu_to_gpu(self._resources, 0, index)
            index.add(self.vectors)
            self.index = index

    @property
    def backend(self) -> str:
        return "none" if self.index is None else type(self.index).__name__

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k), best first."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.vectors))
        if self.index is not None:
            return self.index.search(queries, k)
        scores = torch.from_numpy(queries) @ torch.from_numpy(self.vectors).T
        top = torch.topk(scores, k, dim=1)
        return top.values.numpy(), top.indices.numpy()
