"""`transplant()`: give a pretrained causal LM a new tokenizer.

The model's input embeddings and LM head are rebuilt for the new vocabulary:

1. tokens both vocabularies share, compared by their **bytes** (so GPT-2's
   `Ġthe`, SentencePiece's `▁the` and tiktoken's b" the" are one token), keep
   their rows exactly;
2. special tokens are mapped by the same text first (`<|endoftext|>`), then by
   role (document start/end, chat turn, FIM, pad; `tokenshift.common.specials`:
   never to the base's `<unk>` unless that is the token's only role); the
   report says how each one was mapped;
3. every other new token gets rows from the chosen heuristic
   (`transplant.heuristics`), falling back to a random draw where the
   heuristic has nothing to go on; with `method="omp"`, by orthogonal
   matching pursuit in a donor model's embedding space (a model that already
   uses the new tokenizer; `heuristics.omp`); or, with `method="zett"`, from a trained
   ZeTT hypernetwork (`tokenshift.hypernet`). ZeTT itself predicts the shared
   tokens too; here they are copied like every method's (its lexical loss
   trains it to reproduce exactly those rows), unless `copy_shared=False`.

Tied heads stay tied; an untied head gets the same heuristic weights applied
to its own rows. The config (`vocab_size`, bos/eos/pad ids) and generation
config follow the new tokenizer, and the matrices have exactly one row per
new id (no padded rows a softmax could pick), so the result saves and reloads
with plain `transformers` and converts to GGUF.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.common import specials
from tokenshift.common.embeddings import embedding_rows

from . import heuristics
from .auxiliary import AuxEmbedder, Embedder

# the registry of method names (the CLI offers ALL_METHODS)
METHODS = ("tokenadapt", "local", "global", "mean", "random", "focus", "omp-aux")  # need only the model and tokenizers
DONOR_METHODS = ("omp",)  # need a donor model that uses the new tokenizer (donor=)
TRAINED_METHODS = ("zett",)  # need a trained network (hypernet=)
ALL_METHODS = METHODS + DONOR_METHODS + TRAINED_METHODS
NEEDS_AUX = ("tokenadapt", "local", "global", "focus", "omp-aux")
DEFAULT_K = {"omp": heuristics.omp.DEFAULT_K, "omp-aux": 16}  # OMP's sparsity; the paper's 64 with a donor


@dataclass
class TransplantReport:
    """What happened to each new row (counts), the special-token mapping, and the options used."""

    method: str
    old_vocab: int
    new_vocab: int
    copied: int = 0
    specials: dict[str, str] = field(default_factory=dict)  # new special -> where its rows came from
    by_source: dict[str, int] = field(default_factory=dict)  # heuristic -> number of rows it made
    random_fallback: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    tied: bool = True
    seconds: float = 0.0
    eval: dict[str, Any] = field(default_factory=dict)  # text -> bits per byte before/after (CLI --eval)
    # new ids whose rows are exact copies of old rows, as ranges ("0-255,260"; id_ranges); tens of kB for a
    # real vocabulary, so left out of the repr that users print (it is in the saved JSON)
    copied_ids: str = field(default="", repr=False)
    finetune: dict[str, Any] = field(default_factory=dict)  # finetune_embeddings' summary (CLI --finetune)
    distill: dict[str, Any] = field(default_factory=dict)  # distill_transplant's summary (CLI --distill)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")


def id_ranges(ids: list[int]) -> str:
    """Ids as compact ranges, so a report can list tens of thousands of them on one line.

    Example: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"; parse_id_ranges reads it back.
    """
    out, ids = [], sorted(set(ids))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def parse_id_ranges(text: str) -> list[int]:
    """The ids `id_ranges` wrote: "0-2,5" -> [0, 1, 2, 5]."""
    ids: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        ids.extend(range(int(lo), int(hi or lo) + 1))
    return ids


def _vocab(tok: Any) -> ByteVocab:
    return ByteVocab.of(tok)


def _role_ids(tok: Any, vocab: ByteVocab) -> dict[str, int]:
    return specials.declared_roles(tok, vocab.bos_id, vocab.eos_id)


def _old_ids_by_bytes(old: ByteVocab, rows: int) -> dict[bytes, int]:
    """bytes -> the old id that stands for them (the one the old tokenizer produces, if several)."""
    out: dict[bytes, int] = {}
    for i, piece in enumerate(old.pieces[:rows]):
        if piece and piece not in out:
            out[piece] = i
    for group in old.duplicates():
        piece = old.pieces[group[0]]
        made = old.encode_raw(piece, strict=False) if piece else []
        if len(made) == 1 and made[0] in group and made[0] < rows:
            out[piece] = made[0]
    return out


def _heads(model: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    return embedding_rows(model)


def transplant(model: Any, old_tokenizer: Any, new_tokenizer: Any, method: str = "tokenadapt",
               aux_embedder: Embedder | None = None, temperature: float = 0.3, top_k: int = 3, weight: float = 0.3,
               threshold: float = 0.0, seed: int = 0, inplace: bool = False, hypernet: Any = None,
               copy_shared: bool = True, donor: Any = None, donor_tokenizer: Any = None, k: int | None = None,
               device: str = "auto") -> Any:
    """A copy of `model` (or `model` itself with `inplace`) that reads and writes `new_tokenizer`'s ids.

    `method`: one of ALL_METHODS. `aux_embedder`: a callable `list[str] -> (n, d)`
    for the methods that compare token strings (default all-MiniLM-L6-v2).
    TokenAdapt's options: `temperature` (T), `top_k` (k), `weight` (w: the
    global share), `threshold` (global neighbours below it are dropped).
    `hypernet`: for "zett", a trained `HyperNetwork` or its folder.
    `donor`: for "omp", a causal LM that uses `donor_tokenizer` (default: the
    new tokenizer), which must have every token the base lacks. `k`: OMP's
    sparsity (DEFAULT_K). `device`: where OMP runs ("auto": CUDA when present).
    `copy_shared=False` makes the method produce the shared tokens' rows too.
    The report is `model.transplant_report` (a `TransplantReport`).
    """
    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    if method == "zett" and hypernet is None:
        raise ValueError("method='zett' needs hypernet=: a HyperNetwork, or a folder written by "
                         "`tokenshift train-hypernet`")
    if method != "zett" and hypernet is not None:
        raise ValueError(f"hypernet= is only used by method='zett', not {method!r}")
    if method in DONOR_METHODS and donor is None:
        raise ValueError(f"method={method!r} needs donor=: a model that already uses the new tokenizer "
                         f"(or a donor-free method: {', '.join(METHODS)})")
    if method not in DONOR_METHODS and (donor is not None or donor_tokenizer is not None):
        raise ValueError(f"donor= and donor_tokenizer= are only used by method='omp', not {method!r}")
    if k is not None and (method not in DEFAULT_K or k < 1):
        raise ValueError(f"k={k!r}: OMP's sparsity, a positive integer, for method 'omp' or 'omp-aux' only")
    k = DEFAULT_K.get(method, 0) if k is None else k
    started = time.perf_counter()
    old, new = _vocab(old_tokenizer), _vocab(new_tokenizer)
    rows_in, rows_out = _heads(model)
    if rows_in.shape[0] < len(old.pieces) - sum(1 for i in old.special if i >= rows_in.shape[0]):
        raise ValueError(
            f"the model has {rows_in.shape[0]} embedding rows but its tokenizer has {len(old.pieces)} ids: "
            "pass the tokenizer the model was trained with as old_tokenizer"
        )
    report = TransplantReport(method, len(old.pieces), len(new.pieces), tied=rows_out is None,
                              options={"temperature": temperature, "top_k": top_k, "weight": weight,
                                       "threshold": threshold, "seed": seed, "copy_shared": copy_shared})
    if method in DEFAULT_K:
        report.options["k"] = k
    n_new, dim = len(new.pieces), rows_in.shape[1]
    out_in = torch.zeros(n_new, dim)
    out_out = None if rows_out is None else torch.zeros(n_new, dim)
    done = np.zeros(n_new, dtype=bool)

    # 1. shared tokens, by bytes
    by_bytes = _old_ids_by_bytes(old, rows_in.shape[0])
    shared_new = [i for i, p in enumerate(new.pieces) if p and p in by_bytes] if copy_shared else []
    shared_old = np.array([by_bytes[new.pieces[i]] for i in shared_new], dtype=np.int64)
    if shared_new:
        index = torch.tensor(shared_new)
        out_in[index] = rows_in[torch.from_numpy(shared_old)]
        if out_out is not None:
            out_out[index] = rows_out[torch.from_numpy(shared_old)]
        done[shared_new] = True
    report.copied = len(shared_new)
    copied_ids = list(shared_new)
    donor_side = _donor_side(donor, donor_tokenizer or new_tokenizer, new, by_bytes, done) if donor is not None \
        else None  # checked before any heavy work
    if method in NEEDS_AUX and aux_embedder is None:
        aux_embedder = AuxEmbedder()
    src = heuristics.Source(old, rows_in, rows_out, aux_embedder)

    # 2. specials: same text, then same role
    old_specials = {i: t for i, t in old.special.items() if i < rows_in.shape[0]}
    old_by_text = {text: i for i, text in old_specials.items()}
    old_by_role = heuristics.rows_by_role(old_specials, _role_ids(old_tokenizer, old))
    new_roles = heuristics.special_roles(new.special, _role_ids(new_tokenizer, new))
    unplaced: list[int] = []  # specials with no text or role match: the donor's row (omp) or the specials' mean
    for i, text in sorted(new.special.items()):
        if i >= n_new:
            continue
        done[i] = True
        if text in old_by_text:
            j = old_by_text[text]
            out_in[i] = rows_in[j]
            if out_out is not None:
                out_out[i] = rows_out[j]
            report.specials[text] = f"{old.special[j]} (same text)"
            copied_ids.append(i)
            continue
        match = heuristics.match_by_role(new_roles.get(i, ()), old_by_role)
        if match is None:
            unplaced.append(i)
            continue
        out_in[i] = rows_in[match.input_id]
        if out_out is not None:
            out_out[i] = rows_out[match.output_id]
        if out_out is None or match.input_id == match.output_id:
            report.specials[text] = f"{old.special[match.input_id]} ({match.input_role})"
            copied_ids.append(i)
        else:
            report.specials[text] = (f"input {old.special[match.input_id]} ({match.input_role}), "
                                     f"output {old.special[match.output_id]} ({match.output_role})")
    if donor_side is not None:  # the donor has rows for these specials: OMP them with the other new tokens
        with_row = [i for i in unplaced if new.special[i] in donor_side.special_ids]
        unplaced = [i for i in unplaced if i not in with_row]
        done[with_row] = False
    if unplaced:  # an unknown marker (a chat or FIM token): the mean of the old specials' rows, a neutral start
        pool = torch.tensor(list(old_specials)) if old_specials else torch.arange(rows_in.shape[0])
        index = torch.tensor(unplaced)
        out_in[index] = rows_in[pool].mean(0)
        if out_out is not None:
            out_out[index] = rows_out[pool].mean(0)
        for i in unplaced:
            report.specials[new.special[i]] = "mean of the old special rows (no role the base has)"

    # 3. the rest, by the chosen heuristic; random where it has nothing to go on
    todo = [i for i in range(n_new) if not done[i] and (new.pieces[i] or i in new.special)]
    if todo:
        pieces = [new.pieces[i] or b"" for i in todo]
        if method == "tokenadapt":
            est = heuristics.hybrid(src, pieces, temperature, top_k, weight, threshold)
        elif method == "local":
            est = heuristics.local(src, pieces, temperature)
        elif method == "global":
            est = heuristics.global_(src, pieces, temperature, top_k, threshold)
        elif method == "mean":
            est = heuristics.mean(src, pieces)
        elif method == "focus":
            est = heuristics.focus(src, pieces, shared_old)
        elif method == "omp-aux":
            est = heuristics.omp_aux(src, pieces, shared_old, k, device=device)
        elif method == "omp":
            est = _omp_from_donor(src, donor_side, new, todo, shared_new, shared_old, k, device)
        elif method == "zett":
            est = _zett(hypernet, src, pieces)
        else:
            est = heuristics.random(src, pieces, seed)
        fallback = heuristics.random(src, pieces, seed)
        if method == "omp":  # a token the donor has no row for: FVT's mean of its old pieces first
            fvt = heuristics.mean(src, pieces)
            has = torch.from_numpy(fvt.ok)[:, None]
            fallback.rows_in = torch.where(has, fvt.rows_in, fallback.rows_in)
            if fallback.rows_out is not None:
                fallback.rows_out = torch.where(has, fvt.rows_out, fallback.rows_out)
            fallback.source = [f or r for f, r in zip(fvt.source, fallback.source)]
            est.source = [s or f"{f} (no donor row)" for s, f in zip(est.source, fallback.source)]
        ok = torch.from_numpy(est.ok)[:, None]
        index = torch.tensor(todo)
        out_in[index] = torch.where(ok, est.rows_in, fallback.rows_in)
        if out_out is not None:
            out_out[index] = torch.where(ok, est.rows_out, fallback.rows_out)
        for i, name in zip(todo, est.source):
            if name:
                report.by_source[name] = report.by_source.get(name, 0) + 1
            if i in new.special:
                report.specials[new.special[i]] = f"{name} from the donor's row" if name else "random"
        report.random_fallback = sum(1 for s in est.source if not s or "random" in s) if method != "random" else 0
    unused = [i for i in range(n_new) if not done[i] and not new.pieces[i] and i not in new.special]
    if unused:  # ids a sparse vocabulary leaves empty: never produced, give them the mean row
        out_in[torch.tensor(unused)] = rows_in.mean(0)
        if out_out is not None:
            out_out[torch.tensor(unused)] = rows_out.mean(0)

    report.copied_ids = id_ranges(copied_ids)
    result = model if inplace else copy.deepcopy(model)
    _install(result, out_in, out_out, new_tokenizer, new)
    report.seconds = time.perf_counter() - started
    result.transplant_report = report
    return result


@dataclass
class _DonorSide:
    """A donor model's rows and how new ids find them."""

    rows_in: torch.Tensor
    rows_out: torch.Tensor | None
    ids: dict[bytes, int]  # bytes -> donor id (possibly past its rows)
    special_ids: dict[str, int]  # special text -> donor id with a row


def _donor_side(donor: Any, donor_tokenizer: Any, new: ByteVocab, old_by_bytes: dict[bytes, int],
                done: np.ndarray) -> _DonorSide:
    """The donor's rows, after checking that its tokenizer has every byte token the base lacks."""
    dv = _vocab(donor_tokenizer)
    d_in, d_out = _heads(donor)
    ids = _old_ids_by_bytes(dv, len(dv.pieces))
    needed = [i for i, p in enumerate(new.pieces) if p and not done[i] and p not in old_by_bytes]
    missing = [i for i in needed if new.pieces[i] not in ids]
    if missing:
        examples = ", ".join(repr(new.pieces[i]) for i in missing[:3])
        raise ValueError(f"donor_tokenizer does not cover new_tokenizer: {len(missing)} of the {len(needed)} tokens "
                         f"the base lacks are not in the donor's vocabulary (e.g. {examples}); pass the donor model's "
                         "own tokenizer as donor_tokenizer=, a donor that uses new_tokenizer, or a donor-free method")
    past = [i for i in needed if ids[new.pieces[i]] >= d_in.shape[0]]
    if needed and len(past) > len(needed) // 2:
        raise ValueError(f"the donor has {d_in.shape[0]} embedding rows but {len(past)} of the {len(needed)} tokens "
                         f"it must supply have ids past them (donor_tokenizer has {len(dv.pieces)} ids): pass the "
                         "donor model's own tokenizer as donor_tokenizer=")
    if past:
        import warnings

        warnings.warn(f"{len(past)} donor token ids are past the donor's {d_in.shape[0]} embedding rows; those "
                      "tokens get FVT's mean of their old pieces instead", stacklevel=3)
    specials = {t: i for i, t in dv.special.items() if i < d_in.shape[0]}
    return _DonorSide(d_in, d_out, ids, specials)


def _omp_from_donor(src: heuristics.Source, donor: _DonorSide, new: ByteVocab, todo: list[int],
                    shared_new: list[int], shared_old: np.ndarray, k: int, device: str) -> heuristics.Estimate:
    """OMP over the shared tokens the donor has rows for; tokens without a donor row are not ok (fallback)."""
    rows = donor.rows_in.shape[0]

    def donor_id(i: int) -> int:
        got = donor.special_ids.get(new.special[i], -1) if i in new.special else donor.ids.get(new.pieces[i], -1)
        return got if got < rows else -1

    anchors = [(donor_id(i), j) for i, j in zip(shared_new, shared_old.tolist())]
    anchors = [(d, j) for d, j in anchors if d >= 0]
    targets = np.array([donor_id(i) for i in todo], dtype=np.int64)
    has = targets >= 0
    est = heuristics.omp_donor(src, donor.rows_in, donor.rows_out, targets[has],
                               np.array([d for d, _ in anchors], dtype=np.int64),
                               np.array([j for _, j in anchors], dtype=np.int64), k, device=device)
    rows_in = torch.zeros(len(todo), src.rows_in.shape[1])
    rows_in[torch.from_numpy(has)] = est.rows_in
    rows_out = None
    if src.rows_out is not None:
        rows_out = torch.zeros(len(todo), src.rows_out.shape[1])
        rows_out[torch.from_numpy(has)] = est.rows_out
    ok = np.zeros(len(todo), dtype=bool)
    ok[has] = est.ok
    return heuristics.Estimate(rows_in, rows_out, ok, ["omp" if good else "" for good in ok])


def _zett(hypernet: Any, src: heuristics.Source, pieces: list[bytes]) -> heuristics.Estimate:
    """Rows predicted by a ZeTT hypernetwork trained for this model and its tokenizer."""
    import warnings

    from tokenshift.hypernet import HyperNetwork

    hn = hypernet if isinstance(hypernet, HyperNetwork) else HyperNetwork.from_pretrained(hypernet)
    c = hn.config
    if (c.base_vocab, c.base_dim) != tuple(src.rows_in.shape) or c.separate_out != (src.rows_out is not None):
        raise ValueError(f"the hypernetwork was trained for a base with {c.base_vocab} x {c.base_dim} embeddings "
                         f"({'untied' if c.separate_out else 'tied'} head), but this model has "
                         f"{tuple(src.rows_in.shape)} ({'untied' if src.rows_out is not None else 'tied'}); "
                         "use the hypernetwork trained for this model")
    if hn.vocab.pieces[: c.base_vocab] != src.old.pieces[: c.base_vocab]:
        raise ValueError("the hypernetwork was trained with another base tokenizer than old_tokenizer; pass the "
                         "tokenizer the hypernetwork's base model uses")
    if not torch.allclose(hn.rows_in.cpu(), src.rows_in, atol=1e-4):
        warnings.warn("this model's embeddings differ from those the hypernetwork was trained on (a fine-tuned "
                      "model?); its predictions assume the original rows", stacklevel=3)
    rows_in, rows_out = hn.embed_pieces(pieces)
    ok = np.ones(len(pieces), dtype=bool)
    return heuristics.Estimate(rows_in, rows_out if c.separate_out else None, ok, ["zett"] * len(pieces))


def _install(model: Any, rows_in: torch.Tensor, rows_out: torch.Tensor | None, tok: Any, vocab: ByteVocab) -> None:
    """Put the new rows in the model and make its config agree with the new tokenizer."""
    dtype = model.get_input_embeddings().weight.dtype
    model.resize_token_embeddings(rows_in.shape[0], mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(rows_in.to(dtype))
        if rows_out is not None:
            model.get_output_embeddings().weight.copy_(rows_out.to(dtype))
    if rows_out is None:
        model.tie_weights()
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and getattr(quantizer.quantization_config, "quant_method", None) == "gguf":
        # a GGUF checkpoint was dequantized on load: the weights are plain floats, save them as such
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    config = model.config
    config.vocab_size = rows_in.shape[0]
    roles = _role_ids(tok, vocab)
    for role in ("bos", "eos", "pad"):
        setattr(config, f"{role}_token_id", roles.get(role))
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        for role in ("bos", "eos", "pad"):
            setattr(gen, f"{role}_token_id", roles.get(role))


def save_transplant(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Write the model, its tokenizer and `transplant_report.json` to `out_dir` (a folder `from_pretrained` reads)."""
    out = Path(out_dir)
    if not hasattr(tokenizer, "save_pretrained"):
        raise TypeError(f"cannot save a {type(tokenizer).__name__} as a Hugging Face tokenizer; pass a tokenizer "
                        "folder or a transformers tokenizer as the new tokenizer")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    report = getattr(model, "transplant_report", None)
    if report is not None:
        report.save(out / "transplant_report.json")
    return out
