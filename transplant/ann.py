"""Nearest neighbours by inner product (cosine over normalised vectors), with FAISS.

FAISS is imported lazily: `faiss-cpu` (extra `ann`) or `faiss-gpu` (extra
`gpu`, the same `faiss` module; never both in one environment). With a GPU
build and CUDA present the index moves to the GPU. Without FAISS an exact
torch matrix product gives the same answer for a flat index (slower on big
vocabularies), so nothing breaks on a bare install. ScaNN (extra `scann`) is
one more index kind of `AnnVocabulary`, imported only when asked for.
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


def _scann():
    try:
        import scann
    except ImportError:
        return None
    return scann


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


INDEXES = ("flat", "hnsw", "ivf", "ivfpq", "scann")
VERSION = 1  # of a saved folder's ann_vocabulary.json; one without a "version" field is version 1


def _gpu_ok(faiss, device: str) -> bool:
    if device == "cpu":
        return False
    ok = hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0 and torch.cuda.is_available()
    if device == "cuda" and not ok:
        raise ValueError("device='cuda' asked for, but faiss has no GPU support here (install faiss-gpu, extra 'gpu')")
    return ok


class AnnVocabulary:
    """Next-token retrieval over a very large output vocabulary (base + n-gram tokens, up to ~1M).

    A FAISS index proposes `candidates` ids per query; they are re-scored
    exactly against the full-precision output rows, so the top-1 is the exact
    argmax whenever it is among the candidates (what recall@1 measures).
    `index`: "flat" (exact inner product), "hnsw" (graph: `hnsw_m` links,
    `ef_construction`, `ef_search`), "ivf" (inverted lists, exact distances
    inside them: `nlist` lists, `nprobe` searched), "ivfpq" (the same with
    product quantisation, `pq_m` 8-bit sub-quantisers: the compact one),
    "scann" (ScaNN, what the dynamic-tokenization paper searches its 1M
    vocabulary with: a tree of `nlist` leaves, `nprobe` searched, scored by
    anisotropic quantisation built for inner product, then reordered exactly;
    ScaNN's own defaults of 2 dimensions a block and threshold 0.2).

    Graph and cluster indexes search by L2 distance, which ranks rows by inner
    product only when they have equal norms. Two exact transformations make it
    so: the mean row is subtracted (q.(r - m) = q.r - q.m, the same ranking for
    a given query; it removes the common direction that LM embeddings share),
    then each row gets one more coordinate, sqrt(M^2 - |r|^2) with M the largest
    norm (Bachrach et al. 2014). Optionally the rows are split into `parts`
    ranges of norm, each with its own M (norm-ranging, Yan et al. 2018), all
    searched and their candidates pooled. faiss-gpu serves flat and IVF indexes
    when present with CUDA (`device="auto"`); HNSW stays on the CPU.
    """

    def __init__(self, output_embeddings: np.ndarray | torch.Tensor, token_bytes: list[bytes], index: str = "hnsw",
                 device: str = "auto", candidates: int = 32, parts: int | None = None, hnsw_m: int = 32,
                 ef_construction: int = 80, ef_search: int = 128, nlist: int | None = None, pq_m: int | None = None,
                 nprobe: int = 32, train_size: int = 100_000, seed: int = 0):
        if index not in INDEXES:
            raise ValueError(f"index must be one of {INDEXES}, got {index!r}")
        faiss = _scann() if index == "scann" else _faiss()
        if faiss is None:
            raise ImportError("AnnVocabulary needs FAISS: pip install faiss-cpu (extra 'ann') or faiss-gpu"
                              if index != "scann" else "index='scann' needs ScaNN: pip install scann (extra 'scann')")
        rows = output_embeddings.detach().float().cpu().numpy() if isinstance(output_embeddings, torch.Tensor) \
            else np.asarray(output_embeddings, dtype=np.float32)
        if rows.ndim != 2 or len(rows) != len(token_bytes):
            raise ValueError(f"{len(token_bytes)} tokens but output embeddings of shape {rows.shape}")
        self.rows = np.ascontiguousarray(rows)
        self.token_bytes = list(token_bytes)
        self.kind, self.candidates, self.device = index, candidates, device
        parts = 1 if index in ("flat", "scann") else (parts or 1)
        if index == "ivfpq":  # product quantisers train 256 centroids each: keep >= 1024 rows a part
            parts = max(1, min(parts, len(rows) // 1024))
        self.settings = {"hnsw_m": hnsw_m, "ef_construction": ef_construction, "ef_search": ef_search,
                         "nprobe": nprobe, "nlist": nlist, "pq_m": pq_m, "train_size": train_size, "seed": seed}
        self.center = self.rows.mean(0) if index not in ("flat", "scann") else np.zeros(self.rows.shape[1],
                                                                                          dtype=np.float32)
        norms = np.linalg.norm(self.rows - self.center, axis=1)
        order = np.argsort(norms, kind="stable")
        self.parts: list[tuple[np.ndarray, float, object]] = []  # (global ids, norm bound, cpu index)
        for ids in np.array_split(order, min(parts, len(order))):
            if len(ids):
                bound = float(norms[ids].max())
                vectors = self._index_vectors(self.rows[ids] - self.center, bound)
                self.parts.append((ids, bound, self._build(faiss, vectors)))
        self._place(faiss)

    def _build(self, faiss, vectors: np.ndarray):
        n, wide = vectors.shape
        if self.kind == "scann":  # `faiss` is the scann module here: inner product natively, no transformation
            leaves = min(self.settings["nlist"] or max(1, int(math.sqrt(n))), max(1, n // 39))
            return faiss.scann_ops_pybind.builder(vectors, self.candidates, "dot_product").tree(
                num_leaves=leaves, num_leaves_to_search=min(self.settings["nprobe"], leaves),
                training_sample_size=min(n, self.settings["train_size"])).score_ah(
                2, anisotropic_quantization_threshold=0.2).reorder(self.candidates).build()
        if self.kind == "flat":
            built = faiss.IndexFlatIP(wide)
        elif self.kind == "hnsw":
            built = faiss.IndexHNSWFlat(wide, self.settings["hnsw_m"])
            built.hnsw.efConstruction = self.settings["ef_construction"]
        else:
            nlist = self.settings["nlist"] or max(1, int(math.sqrt(n)))
            nlist = min(nlist, max(1, n // 39))  # FAISS wants >= 39 training points per list
            if self.kind == "ivf":
                built = faiss.IndexIVFFlat(faiss.IndexFlatL2(wide), wide, nlist)
            else:
                pq_m = self.settings["pq_m"] or next(m for m in (64, 32, 16, 8, 4, 2, 1) if wide % m == 0)
                built = faiss.IndexIVFPQ(faiss.IndexFlatL2(wide), wide, nlist, pq_m, 8)
            take = min(n, max(self.settings["train_size"], 40 * nlist))
            built.train(vectors[np.random.default_rng(self.settings["seed"]).choice(n, take, replace=False)])
        built.add(vectors)
        return built

    def _index_vectors(self, rows: np.ndarray, bound: float) -> np.ndarray:
        """Flat, ScaNN: the rows. Else the rows with sqrt(bound^2 - |r|^2) appended (|q' - r'|^2 =
        |q|^2 + bound^2 - 2 q.r for q' = (q, 0)), zero-padded to a multiple of 64 for IVF-PQ."""
        if self.kind in ("flat", "scann"):
            return rows
        extra = np.sqrt(np.maximum(bound ** 2 - (rows.astype(np.float64) ** 2).sum(1), 0.0))
        wide = rows.shape[1] + 1
        if self.kind == "ivfpq":
            wide = -(-wide // 64) * 64
        out = np.zeros((len(rows), wide), dtype=np.float32)
        out[:, : rows.shape[1]] = rows
        out[:, rows.shape[1]] = extra
        return out

    def _place(self, faiss) -> None:
        """Move flat/IVF-PQ parts to the GPU when asked for or available; set the search knobs."""
        self.placed, self.on = [], "cpu"
        gpu = self.kind not in ("hnsw", "scann") and _gpu_ok(faiss, self.device)
        if gpu:
            self._resources = faiss.StandardGpuResources()
            self.on = "cuda"
        for _, _, built in self.parts:
            self.placed.append(faiss.index_cpu_to_gpu(self._resources, 0, built) if gpu else built)
        self._tune()

    def _tune(self) -> None:
        for index in self.placed:
            if self.kind == "hnsw":
                index.hnsw.efSearch = self.settings["ef_search"]
            elif self.kind not in ("flat", "scann"):  # ScaNN takes its leaves to search per call
                index.nprobe = self.settings["nprobe"]

    def __len__(self) -> int:
        return len(self.token_bytes)

    def search(self, queries: np.ndarray | torch.Tensor, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (m, k), best first: every part's candidates re-scored exactly."""
        q = queries.detach().float().cpu().numpy() if isinstance(queries, torch.Tensor) else queries
        q = np.ascontiguousarray(np.atleast_2d(q), dtype=np.float32)
        found = []
        for (ids, _, _), index in zip(self.parts, self.placed):
            c = min(max(k, self.candidates), len(ids))
            if self.kind == "scann":
                local, _ = index.search_batched(q, final_num_neighbors=c, pre_reorder_num_neighbors=c,
                                                leaves_to_search=self.settings["nprobe"])
                local = np.asarray(local, dtype=np.int64)
                found.append(np.where(local < 0, -1, ids[np.maximum(local, 0)]))
                continue
            wide = np.zeros((len(q), index.d), dtype=np.float32)
            wide[:, : q.shape[1]] = q
            _, local = index.search(wide, c)
            found.append(np.where(local < 0, -1, ids[np.maximum(local, 0)]))
        cand = np.concatenate(found, axis=1)
        exact = np.einsum("md,mcd->mc", q, self.rows[np.maximum(cand, 0)])
        exact[cand < 0] = -np.inf
        order = np.argsort(-exact, axis=1)[:, :k]
        return np.take_along_axis(exact, order, 1), np.take_along_axis(cand, order, 1)

    def memory_bytes(self) -> int:
        """Bytes the indexes hold (serialised size) plus the float32 rows kept for re-scoring."""
        if self.kind == "scann":  # ScaNN serialises to a folder of files
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                for k, (_, _, built) in enumerate(self.parts):
                    (Path(tmp) / str(k)).mkdir()
                    built.serialize(str(Path(tmp) / str(k)))
                held = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file())
            return held + self.rows.nbytes
        faiss = _faiss()
        return sum(int(faiss.serialize_index(built).nbytes) for _, _, built in self.parts) + self.rows.nbytes

    def save(self, folder: str | Path) -> Path:
        """part-K.faiss (ScaNN: a part-K.scann folder) + part-K.npy, rows.npy and ann_vocabulary.json in
        `folder` (beside the model)."""
        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for k, (ids, _, built) in enumerate(self.parts):
            if self.kind == "scann":
                (folder / f"part-{k}.scann").mkdir(exist_ok=True)
                built.serialize(str(folder / f"part-{k}.scann"))
            else:
                faiss.write_index(built, str(folder / f"part-{k}.faiss"))
            np.save(folder / f"part-{k}.npy", ids)
        np.save(folder / "rows.npy", self.rows)
        meta = {"version": VERSION, "kind": self.kind, "candidates": self.candidates, "settings": self.settings,
                "center": self.center.tolist(),
                "bounds": [bound for _, bound, _ in self.parts], "tokens": [b.hex() for b in self.token_bytes]}
        (folder / "ann_vocabulary.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "auto") -> "AnnVocabulary":
        folder = Path(folder)
        if not (folder / "ann_vocabulary.json").exists():
            raise FileNotFoundError(f"{str(folder)!r} holds no saved AnnVocabulary (ann_vocabulary.json)")
        meta = json.loads((folder / "ann_vocabulary.json").read_text())
        faiss = _scann() if meta.get("kind") == "scann" else _faiss()
        if faiss is None:
            raise ImportError("AnnVocabulary needs FAISS: pip install faiss-cpu (extra 'ann') or faiss-gpu"
                              if meta.get("kind") != "scann" else
                              f"{folder} holds a ScaNN index: pip install scann (extra 'scann')")
        version = meta.get("version", 1)  # written before the field existed: version 1
        if version != VERSION:
            raise ValueError(f"{folder / 'ann_vocabulary.json'} is AnnVocabulary format version {version!r}; "
                             f"this tokenshift reads version {VERSION}")
        self = cls.__new__(cls)
        self.rows = np.load(folder / "rows.npy")
        self.center = np.asarray(meta["center"], dtype=np.float32)
        self.token_bytes = [bytes.fromhex(h) for h in meta["tokens"]]
        self.kind, self.candidates, self.settings, self.device = meta["kind"], meta["candidates"], meta["settings"], device
        read = ((lambda k: faiss.scann_ops_pybind.load_searcher(str(folder / f"part-{k}.scann")))
                if self.kind == "scann" else (lambda k: faiss.read_index(str(folder / f"part-{k}.faiss"))))
        self.parts = [(np.load(folder / f"part-{k}.npy"), bound, read(k)) for k, bound in enumerate(meta["bounds"])]
        self._place(faiss)
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

    vocab = ByteVocab.of(tokenizer)
    decoder, emb = model.base_model, model.get_input_embeddings()
    scale = float(getattr(emb, "embed_scale", 1.0))
    start = vocab.start_id
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
