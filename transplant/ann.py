"""Nearest neighbours by inner product (cosine over normalised vectors), with FAISS.

FAISS is imported lazily: `faiss-cpu` (extra `ann`) or `faiss-gpu` (extra
`gpu`, the same `faiss` module; never both in one environment). With a GPU
build and CUDA present the index moves to the GPU. Without FAISS an exact
torch matrix product gives the same answer for a flat index (slower on big
vocabularies), so nothing breaks on a bare install.
"""
from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

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


INDEXES = ("flat", "hnsw", "ivfpq")


def _gpu_ok(faiss, device: str) -> bool:
    if device == "cpu":
        return False
    ok = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0 and torch.cuda.is_available()
    if device == "cuda" and not ok:
        raise ValueError("device='cuda' asked for, but faiss has no GPU support here (install faiss-gpu, extra 'gpu')")
    return ok


class AnnVocabulary:
    """Next-token retrieval over a very large output vocabulary (base + n-gram tokens, up to ~1M).

    A FAISS inner-product index proposes `candidates` ids per query; they are
    re-scored exactly against the full-precision output rows, so the top-1 is
    the exact argmax whenever it is among the candidates (what recall@1
    measures). `index`: "flat" (exact), "hnsw" (graph, `hnsw_m` links,
    `ef_search`), "ivfpq" (inverted lists + product quantisation: `nlist`
    lists, `pq_m` sub-quantisers of 8 bits, `nprobe` lists searched; the
    compact one). faiss-gpu is used when present and CUDA is available
    (`device="auto"`; HNSW stays on the CPU, FAISS has no GPU HNSW).
    """

    def __init__(self, output_embeddings: np.ndarray | torch.Tensor, token_bytes: list[bytes], index: str = "hnsw",
                 device: str = "auto", candidates: int = 32, hnsw_m: int = 32, ef_construction: int = 80,
                 ef_search: int = 128, nlist: int | None = None, pq_m: int | None = None, nprobe: int = 32,
                 train_size: int = 100_000, seed: int = 0):
        faiss = _faiss()
        if faiss is None:
            raise ImportError("AnnVocabulary needs FAISS: pip install faiss-cpu (extra 'ann') or faiss-gpu")
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
        rows = output_embeddings.detach().float().cpu().numpy() if isinstance(output_embeddings, torch.Tensor) \
            else np.asarray(output_embeddings, dtype=np.float32)
        if rows.ndim != 2 or len(rows) != len(token_bytes):
            raise ValueError(f"{len(token_bytes)} tokens but output embeddings of shape {rows.shape}")
        self.rows = np.ascontiguousarray(rows)
        self.token_bytes = list(token_bytes)
        self.kind, self.candidates = index, candidates
        self.settings = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search,
                         "nprobe": nprobe}
        n, d = self.rows.shape
        if index == "flat":
            built = faiss.IndexFlatIP(d)
        elif index == "hnsw":
            built = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            built.hnsw.efConstruction = ef_construction
        else:
            nlist = nlist or max(1, int(4 * math.sqrt(n)))
            pq_m = pq_m or next(m for m in (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if d % m == 0 and m <= d)
            built = faiss.IndexIVFPQ(faiss.IndexFlatIP(d), d, nlist, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
            sample = self.rows[np.random.default_rng(seed).choice(n, min(n, max(train_size, 40 * nlist)),
                                                                  replace=False)]
            built.train(sample)
            self.settings.update(nlist=nlist, pq_m=pq_m)
        built.add(self.rows)
        self._cpu_index = built
        self.index = self._place(faiss, built, device)
        self._tune()

    def _place(self, faiss, built, device: str):
        self.device = "cpu"
        if self.kind != "hnsw" and _gpu_ok(faiss, device):
            self._resources = faiss.StandardGpuResources()
            self.device = "cuda"
            return faiss.index_cpu_to_gpu(self._resources, 0, built)
        return built

    def _tune(self) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = self.settings["ef_search"]
        elif self.kind == "ivfpq":
            self.index.nprobe = self.settings["nprobe"]

    def __len__(self) -> int:
        return len(self.token_bytes)

    def search(self, queries: np.ndarray | torch.Tensor, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k), best first: index candidates re-scored exactly."""
        q = queries.detach().float().cpu().numpy() if isinstance(queries, torch.Tensor) else queries
        q = np.ascontiguousarray(np.atleast_2d(q), dtype=np.float32)
        c = min(max(k, self.candidates), len(self))
        _, ids = self.index.search(q, c)
        safe = np.where(ids < 0, 0, ids)  # -1: the index found fewer than c
        exact = np.einsum("md,mcd->mc", q, self.rows[safe])
        exact[ids < 0] = -np.inf
        order = np.argsort(-exact, axis=1)[:, :k]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(ids, order, 1)

    def memory_bytes(self) -> int:
        """Bytes the index holds (serialised size) plus the float32 rows kept for re-scoring."""
        faiss = _faiss()
        return int(faiss.serialize_index(self._cpu_index).nbytes) + self.rows.nbytes

    def save(self, folder: str | Path) -> Path:
        """index.faiss + rows.npy + tokens.json in `folder` (beside the model)."""
        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._cpu_index, str(folder / "index.faiss"))
        np.save(folder / "rows.npy", self.rows)
        meta = {"kind": self.kind, "candidates": self.candidates, "settings": self.settings,
                "tokens": [b.hex() for b in self.token_bytes]}
        (folder / "ann_vocabulary.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> "AnnVocabulary":
        faiss = _faiss()
        if faiss is None:
            raise ImportError("AnnVocabulary needs FAISS: pip install faiss-cpu (extra 'ann') or faiss-gpu")
        folder = Path(folder)
        if not (folder / "ann_vocabulary.json").exists():
            raise FileNotFoundError(f"{str(folder)!r} holds no saved AnnVocabulary (ann_vocabulary.json)")
        meta = json.loads((folder / "ann_vocabulary.json").read_text())
        self = cls.__new__(cls)
        self.rows = np.load(folder / "rows.npy")
        self.token_bytes = [bytes.fromhex(h) for h in meta["tokens"]]
        self.kind, self.candidates, self.settings = meta["kind"], meta["candidates"], meta["settings"]
        self._cpu_index = faiss.read_index(str(folder / "index.faiss"))
        self.index = self._place(faiss, self._cpu_index, device)
        self._tune()
        return self


@torch.no_grad()
def generate_with_ann(model, tokenizer, ann: AnnVocabulary, prompt: bytes, max_new_tokens: int = 32,
                      temperature: float = 0.0, top_k: int = 32, seed: int | None = None,
                      input_rows: np.ndarray | torch.Tensor | None = None, stop_ids: set[int] | None = None) -> bytes:
    """Generate by retrieving each next token from `ann` (greedy, or sampling over the re-scored top-k).

    Ids below the tokenizer's size are its own tokens; the rest are n-gram
    tokens. The prompt is read in base tokens. A retrieved token is fed back
    with its row of `input_rows` (n, d) when given (e.g. hypernet input
    embeddings), else as its base tokenization: the model reads base tokens,
    the vocabulary it writes in is the ANN's.
    """
    from tokenshift.bytelevel import ByteVocab

    vocab = tokenizer if isinstance(tokenizer, ByteVocab) else ByteVocab.from_tokenizer(tokenizer)
    decoder, emb = model.base_model, model.get_input_embeddings()
    scale = float(getattr(emb, "embed_scale", 1.0))
    start = vocab.bos_id if vocab.bos_id is not None else vocab.eos_id
    rows_in = None if input_rows is None else torch.as_tensor(input_rows, dtype=emb.weight.dtype)
    rng = np.random.default_rng(seed)
    stop_ids = stop_ids if stop_ids is not None else {vocab.eos_id} - {None}

    def embed(ids: list[int]) -> torch.Tensor:
        return emb(torch.tensor([ids]))  # the module applies any embedding scale (Gemma)

    cache_kw = "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
    out = decoder(inputs_embeds=embed([start, *vocab.encode(prompt)]), use_cache=True)
    past = getattr(out, "cache", None) or out.past_key_values
    hidden, generated = out.last_hidden_state[0, -1], bytearray()
    for _ in range(max_new_tokens):
        scores, ids = ann.search(hidden[None], k=1 if temperature <= 0 else top_k)
        if temperature <= 0:
            pick = int(ids[0, 0])
        else:
            s = scores[0] / temperature
            p = np.exp(s - s.max())
            pick = int(ids[0, rng.choice(len(p), p=p / p.sum())])
        if pick in stop_ids:
            break
        piece = ann.token_bytes[pick]
        generated += piece
        if rows_in is not None:
            step = rows_in[pick][None, None] * scale
        else:
            step = embed([pick] if pick < len(vocab.pieces) else vocab.encode_raw(piece, strict=False))
        out = decoder(inputs_embeds=step, use_cache=True, **{cache_kw: past})
        past = getattr(out, "cache", None) or out.past_key_values
        hidden = out.last_hidden_state[0, -1]
    return bytes(generated)
