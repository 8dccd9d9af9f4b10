"""The ZeTT hypernetwork: embeddings for any tokenizer's tokens, from their pieces under the base tokenizer.

Follows Minixhofer, Ponti & Vulić, "Zero-Shot Tokenizer Transfer" (NeurIPS
2024) and its code (`bminixhofer/zett`, `hf_hypernet/modeling_hypernet.py`):

    token bytes -> base-tokenizer ids (<= max_pieces, longer ones truncated)
      -> frozen base rows, input || output (untied) -> in-rescaler (mean 0, std 0.02)
      -> Linear + ProjectorBlock -> + learned positions -> LayerNorm
      -> post-LN transformer encoder (RoBERTa-style, 3 layers)
      -> first position -> ProjectorBlock + Linear per head (input; output if untied)
      -> rescaler to the base matrix's per-dimension mean and std

A token the base tokenizer cannot spell at all gets one learned fallback row
as its only piece. The rescalers are fixed (not trained), set once from the
base rows and the untrained network's predictions, as the reference does.

Differences from the reference, on purpose: torch's `TransformerEncoder`
stands in for `RobertaModel` (same post-LN block, no token-type embedding: a
constant absorbed by the LayerNorm's bias); dropout defaults to 0 (the base
LM is frozen and the data are resampled every step); no language embedding,
target priors or inter-token attention (the reference leaves the last two
unimplemented in PyTorch too).

Not here: training (`train.py`) and tokenizer sampling (`sampling.py`).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.decompose import Decomposer
from tokenshift.bytelevel.progress import progress as progress_bar
from tokenshift.common import specials
from tokenshift.common.embeddings import embedding_rows

FORMAT = "tokenshift-hypernet"
VERSION = 1


@dataclass
class HyperNetConfig:
    """Shape of a hypernetwork. `base_dim`, `base_vocab` and `separate_out` are read from the base model."""

    base_dim: int = 0  # d: width of the base model's embeddings
    base_vocab: int = 0  # rows of the base embedding matrix
    separate_out: bool = False  # the base LM head is untied: predict its rows with their own head
    hidden_size: int = 0  # 0 -> base_dim (ZeTT: TinyLlama 2048 = its model width)
    intermediate_size: int = 0  # 0 -> 2 * hidden_size (ZeTT: TinyLlama 4096)
    num_layers: int = 3  # ZeTT's hn_n_layers
    num_heads: int = 0  # 0 -> hidden_size // 64, at least 1 (the reference's rule)
    max_pieces: int = 7  # ZeTT's hn_surface_maxlen for TinyLlama / Mistral (default 16 in its code)
    dropout: float = 0.0  # see the module docstring
    init_std: float = 0.02  # RoBERTa's initializer range; the in-rescaler maps base rows to this std

    def __post_init__(self) -> None:
        self.hidden_size = self.hidden_size or self.base_dim
        self.intermediate_size = self.intermediate_size or 2 * self.hidden_size
        self.num_heads = self.num_heads or max(1, self.hidden_size // 64)
        if self.base_dim <= 0 or self.base_vocab <= 0:
            raise ValueError(f"base_dim and base_vocab must be > 0, got {self.base_dim} and {self.base_vocab}; "
                             "build the hypernetwork with HyperNetwork.from_base(model, tokenizer)")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.max_pieces < 1 or self.num_layers < 1:
            raise ValueError(f"max_pieces and num_layers must be >= 1, got {self.max_pieces} and {self.num_layers}")

    @property
    def input_dim(self) -> int:
        return 2 * self.base_dim if self.separate_out else self.base_dim


class ProjectorBlock(nn.Module):
    """ZeTT's projector: LayerNorm(x + gelu(W2 gelu(W1 x))), shape-preserving (N, H) -> (N, H)."""

    def __init__(self, dim: int, intermediate: int):
        super().__init__()
        self.dense1 = nn.Linear(dim, intermediate)
        self.dense2 = nn.Linear(intermediate, dim)
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.dense2(F.gelu(self.dense1(x), approximate="tanh")), approximate="tanh")
        return self.ln(h + x)


def affine_to(x: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, b), each (1, d), so that `w * x + b` has the target per-dimension mean and std.

    Example: x = [[0.], [2.]] (mean 1, std 1.41), target mean 5, std 1.41 -> w = 1, b = 4.
    """
    w = target_std / (x.std(0) + 1e-8)
    b = target_mean - (x * w).mean(0)
    return w[None], b[None]


class HyperNetwork(nn.Module):
    """Predicts (input, output) embedding rows of a base LM for tokens it has never seen.

    Build with `from_base(model, tokenizer)`; reload with `from_pretrained(dir)`.
    """

    def __init__(self, config: HyperNetConfig, rows_in: torch.Tensor, rows_out: torch.Tensor | None,
                 base_tokenizer: Any):
        super().__init__()
        c = self.config = config
        if tuple(rows_in.shape) != (c.base_vocab, c.base_dim):
            raise ValueError(f"base input rows are {tuple(rows_in.shape)}, config says ({c.base_vocab}, {c.base_dim})")
        if (rows_out is not None) != c.separate_out:
            raise ValueError("pass output rows exactly when config.separate_out (an untied base LM head)")
        self.base_tokenizer = base_tokenizer
        self.vocab = ByteVocab.from_tokenizer(base_tokenizer)
        beyond = [i for i, p in enumerate(self.vocab.pieces) if p and i >= c.base_vocab]
        if beyond:  # ids past the matrix are fine for added specials, never for tokens with bytes
            raise ValueError(f"the base tokenizer has {len(self.vocab)} ids (token {beyond[0]} stands for bytes) "
                             f"but the embedding matrix has {c.base_vocab} rows: pass the tokenizer the base "
                             "model was trained with")
        self.decomposer = Decomposer(self.vocab, c.base_vocab)
        # frozen base rows: not parameters, and saved by save_pretrained rather than in training checkpoints
        self.register_buffer("rows_in", rows_in.detach().float().clone(), persistent=False)
        self.register_buffer("rows_out", None if rows_out is None else rows_out.detach().float().clone(),
                             persistent=False)
        H, d = c.hidden_size, c.base_dim
        self.register_buffer("in_w", torch.ones(1, c.input_dim))
        self.register_buffer("in_b", torch.zeros(1, c.input_dim))
        self.register_buffer("scale_in_w", torch.ones(1, d))
        self.register_buffer("scale_in_b", torch.zeros(1, d))
        self.register_buffer("scale_out_w", torch.ones(1, d))
        self.register_buffer("scale_out_b", torch.zeros(1, d))
        self.fallback = nn.Parameter(torch.zeros(1, c.input_dim))
        self.input_projection = nn.Sequential(nn.Linear(c.input_dim, H), ProjectorBlock(H, c.intermediate_size))
        self.positions = nn.Embedding(c.max_pieces, H)
        self.embed_norm = nn.LayerNorm(H, eps=1e-5)
        layer = nn.TransformerEncoderLayer(H, c.num_heads, c.intermediate_size, c.dropout, activation="gelu",
                                           batch_first=True, norm_first=False, layer_norm_eps=1e-5)
        self.encoder = nn.TransformerEncoder(layer, c.num_layers, enable_nested_tensor=False)
        self.head_in = nn.Sequential(ProjectorBlock(H, c.intermediate_size), nn.Linear(H, d))
        self.head_out = nn.Sequential(ProjectorBlock(H, c.intermediate_size), nn.Linear(H, d)) if c.separate_out else None
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        if module is self:
            nn.init.normal_(self.fallback, std=self.config.init_std)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_base(cls, model: Any, tokenizer: Any, seed: int = 0, **options: Any) -> "HyperNetwork":
        """A fresh hypernetwork for `model` (a HF causal LM) and the tokenizer it was trained with.

        `options` are `HyperNetConfig` fields (`num_layers=3`, `max_pieces=7`, ...).
        Seeded: the same seed gives the same weights.
        """
        known = {f.name for f in fields(HyperNetConfig)} - {"base_dim", "base_vocab", "separate_out"}
        bad = sorted(set(options) - known)
        if bad:
            raise TypeError(f"unknown HyperNetwork option(s) {bad}; choose from {sorted(known)}")
        rows_in, rows_out = base_rows(model)
        config = HyperNetConfig(base_dim=rows_in.shape[1], base_vocab=rows_in.shape[0],
                                separate_out=rows_out is not None, **options)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = cls(config, rows_in, rows_out, tokenizer)
            net.init_rescalers()
        return net

    @torch.no_grad()
    def init_rescalers(self, sample: int = 4096) -> None:
        """Fix the in-rescaler (base rows -> mean 0, std init_std) and the output rescalers
        (untrained predictions for base tokens -> the base rows' mean and std), as ZeTT's `init_rescaler`."""
        source = self._source()
        c = self.config
        self.in_w.copy_(c.init_std / (source.std(0, keepdim=True) + 1e-8))
        self.in_b.copy_(-(source * self.in_w).mean(0, keepdim=True))
        self.scale_in_w.fill_(1.0), self.scale_in_b.zero_()
        self.scale_out_w.fill_(1.0), self.scale_out_b.zero_()
        ids = self.base_ids()
        ids = ids[torch.randperm(len(ids))[:sample]]
        pred_in, pred_out = self(ids[:, None], torch.ones(len(ids), 1, dtype=torch.bool, device=ids.device))
        w, b = affine_to(pred_in, self.rows_in[ids].mean(0), self.rows_in[ids].std(0))
        self.scale_in_w.copy_(w), self.scale_in_b.copy_(b)
        if self.rows_out is not None:
            w, b = affine_to(pred_out, self.rows_out[ids].mean(0), self.rows_out[ids].std(0))
            self.scale_out_w.copy_(w), self.scale_out_b.copy_(b)

    def base_ids(self) -> torch.Tensor:
        """Base ids that stand for bytes and have a row (identity warm-up draws from these)."""
        ids = [i for i in range(self.config.base_vocab) if i < len(self.vocab.pieces) and self.vocab.pieces[i]]
        return torch.tensor(ids, dtype=torch.long, device=self.rows_in.device)

    # -- the network ---------------------------------------------------------------------------------
    def _source(self) -> torch.Tensor:
        """(V, input_dim): input || output base rows (input only when tied)."""
        return self.rows_in if self.rows_out is None else torch.cat([self.rows_in, self.rows_out], 1)

    def forward(self, piece_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """piece_ids (N, m) base ids, `base_vocab` for the fallback row; mask (N, m), True at real pieces
        (position 0 always real). Returns (N, d) input rows and (N, d) output rows (None when tied)."""
        c = self.config
        if piece_ids.shape[1] > c.max_pieces:
            raise ValueError(f"{piece_ids.shape[1]} pieces per token, but max_pieces is {c.max_pieces}")
        use_fallback = piece_ids >= c.base_vocab  # look up first, then rescale: never touch all V rows
        rows = F.embedding(piece_ids.clamp_max(c.base_vocab - 1), self._source()) * self.in_w + self.in_b
        rows = torch.where(use_fallback[..., None], self.fallback.to(rows.dtype), rows)  # (N, m, input_dim)
        x = self.input_projection(rows)  # (N, m, H)
        x = self.embed_norm(x + self.positions.weight[: piece_ids.shape[1]])
        h = self.encoder(x, src_key_padding_mask=~mask)[:, 0]  # (N, H): first-position readout
        rows_in = self.head_in(h) * self.scale_in_w + self.scale_in_b
        rows_out = None if self.head_out is None else self.head_out(h) * self.scale_out_w + self.scale_out_b
        return rows_in, rows_out

    def surface_forms(self, pieces: list[bytes]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens' bytes -> (piece_ids (N, m), mask (N, m)) with m <= max_pieces; on the hypernet's device."""
        m, fallback = self.config.max_pieces, self.config.base_vocab
        rows = []
        for piece in pieces:
            ids = self.decomposer(piece)[:m] if piece else []
            rows.append(ids or [fallback])
        width = max([len(r) for r in rows] + [1])
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = True
        device = self.rows_in.device
        return ids.to(device), mask.to(device)

    def embed(self, pieces: list[bytes]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Differentiable rows for tokens given by their bytes: (N, d) input, (N, d) output or None."""
        return self(*self.surface_forms(pieces))

    @torch.no_grad()
    def embed_pieces(self, pieces: list[bytes], batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
        """(input rows, output rows), each (N, d) float32 on the CPU; tied bases get the same rows twice.

        The `PieceEmbedder` that `transplant.dynamic` takes."""
        was_training = self.training
        self.eval()
        outs_in, outs_out = [], []
        for lo in range(0, len(pieces), batch_size):
            rows_in, rows_out = self.embed(pieces[lo : lo + batch_size])
            outs_in.append(rows_in.float().cpu())
            outs_out.append((rows_in if rows_out is None else rows_out).float().cpu())
        self.train(was_training)
        d = self.config.base_dim
        if not outs_in:
            return torch.zeros(0, d), torch.zeros(0, d)
        return torch.cat(outs_in), torch.cat(outs_out)

    @torch.no_grad()
    def predict_embeddings(self, new_tokenizer: Any, batch_size: int = 2048,
                           progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Input and output embedding matrices, each (len(new vocab), d), for every id of `new_tokenizer`.

        Tokens with bytes are predicted; special tokens get `special_rows`; ids standing for
        nothing get the mean base row. For a tied base the two matrices are equal.
        """
        new = ByteVocab.of(new_tokenizer)
        d, n = self.config.base_dim, len(new.pieces)
        rows_out_base = self.rows_in if self.rows_out is None else self.rows_out
        out_in = self.rows_in.mean(0).expand(n, d).clone().cpu()
        out_out = rows_out_base.mean(0).expand(n, d).clone().cpu()
        todo = [i for i, p in enumerate(new.pieces) if p]
        bar = progress_bar(total=len(todo), desc="hypernet", unit="tok", disable=not progress)
        for lo in range(0, len(todo), batch_size):
            ids = todo[lo : lo + batch_size]
            rows_in, rows_out = self.embed_pieces([new.pieces[i] for i in ids], batch_size)
            out_in[ids], out_out[ids] = rows_in, rows_out
            bar.update(len(ids))
        bar.close()
        ids, rows_in, rows_out = self.special_rows(new, new_tokenizer)
        out_in[ids], out_out[ids] = rows_in.cpu(), rows_out.cpu()
        return out_in, out_out

    def special_rows(self, new: ByteVocab, new_tokenizer: Any) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """(the special ids of `new`, their input rows, their output rows), as `transplant` places specials:
        the base rows of the special with the same text, else of the same role (`common.specials`; an
        untied base may give input and output different rows), else the mean of the base specials' rows
        (the mean base row when it has none). Training uses it too, so the network learns with the rows
        a transplanted model will have."""
        base = {i: t for i, t in self.vocab.special.items() if i < self.config.base_vocab}
        found = specials.special_sources(base, specials.declared_roles(self.base_tokenizer, self.vocab.bos_id,
                                                                       self.vocab.eos_id),
                                         new.special, specials.declared_roles(new_tokenizer, new.bos_id, new.eos_id))
        ids = sorted(new.special)
        # new id -> base ids of its (input, output) rows; a tied base has one row: the input one
        sources = {i: (m.input_id, m.output_id if self.rows_out is not None else m.input_id) for i, m in found.items()}
        out = []
        for side, matrix in enumerate((self.rows_in, self.rows_in if self.rows_out is None else self.rows_out)):
            mean = matrix[list(base)].mean(0) if base else matrix.mean(0)
            picked = [matrix[sources[i][side]] if i in sources else mean for i in ids]
            out.append(torch.stack(picked) if picked else matrix.new_zeros(0, self.config.base_dim))
        return ids, out[0], out[1]

    # -- files ----------------------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> Path:
        """Write config.json (versioned), model.safetensors (weights, rescalers, base rows) and the base tokenizer."""
        from safetensors.torch import save_file

        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        tensors["rows_in"] = self.rows_in.float().cpu().contiguous()
        if self.rows_out is not None:
            tensors["rows_out"] = self.rows_out.float().cpu().contiguous()
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": FORMAT, "version": str(VERSION)})
        save_tokenizer(self.base_tokenizer, out / "base_tokenizer")
        (out / "config.json").write_text(json.dumps({"format": FORMAT, "version": VERSION, **asdict(self.config)},
                                                    indent=2) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> "HyperNetwork":
        """Load a folder written by `save_pretrained` (refuses other formats and newer versions)."""
        from safetensors.torch import load_file

        folder = Path(path)
        if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"{str(folder)!r} is not a hypernetwork folder (no config.json and "
                                    "model.safetensors); train one with `tokenshift train-hypernet`")
        raw = json.loads((folder / "config.json").read_text())
        if raw.pop("format", None) != FORMAT:
            raise ValueError(f"{folder / 'config.json'} is not a tokenshift hypernetwork config")
        version = raw.pop("version", None)
        if version != VERSION:
            raise ValueError(f"hypernetwork format version {version} in {folder}; this tokenshift reads {VERSION}")
        config = HyperNetConfig(**raw)
        tensors = load_file(str(folder / "model.safetensors"))
        base_tokenizer = load_saved_tokenizer(folder / "base_tokenizer")
        net = cls(config, tensors.pop("rows_in"), tensors.pop("rows_out", None), base_tokenizer)
        net.load_state_dict(tensors)
        return net.to(device).eval()


def base_rows(model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(input rows (V, d), output rows (V, d) or None when the head is tied), float32, detached."""
    rows_in, rows_out = embedding_rows(model)
    if rows_out is not None and rows_out.shape != rows_in.shape:
        raise ValueError(f"the LM head is {tuple(rows_out.shape)} but the input embeddings are "
                         f"{tuple(rows_in.shape)}; a hypernetwork needs one row per token in both")
    return rows_in, rows_out


def save_tokenizer(tok: Any, folder: Path) -> None:
    """A HF tokenizer (save_pretrained) or a SentencePiece processor (its .model), into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(tok, "save_pretrained"):
        tok.save_pretrained(folder)
    elif hasattr(tok, "serialized_model_proto"):
        (folder / "tokenizer.model").write_bytes(tok.serialized_model_proto())
    elif type(tok).__module__.startswith("tokenizers"):
        tok.save(str(folder / "tokenizer.json"))
    else:
        raise TypeError(f"cannot save a {type(tok).__name__} base tokenizer; use a Hugging Face tokenizer")


def load_saved_tokenizer(folder: Path) -> Any:
    """The tokenizer that `save_tokenizer` wrote into `folder`."""
    if (folder / "tokenizer_config.json").exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder)
    if (folder / "tokenizer.model").exists():
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))
