"""The transplant methods, one table: each name, the options it reads, and the function that makes rows.

`transplant()`, the CLI's `--method` choices and the report all read `REGISTRY`, so a
new method is one `Method` entry (an options dataclass and an estimator) and nothing else.
An estimator gets a `Task` (the old model's side, the new tokens to make rows for, the
shared tokens as anchors) and returns a `heuristics.Estimate`; rows it marks not ok get
the seeded random draw.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Any, Callable

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.common.embeddings import embedding_rows

from . import heuristics
from .heuristics.omp import DEFAULT_K as OMP_K


@dataclass
class DonorSide:
    """A donor model's rows and how new ids find them."""

    rows_in: torch.Tensor
    rows_out: torch.Tensor | None
    ids: dict[bytes, int]  # bytes -> donor id (possibly past its rows)
    special_ids: dict[str, int]  # special text -> donor id with a row


@dataclass
class Task:
    """What an estimator reads: the base's side, the new ids still without rows, and the shared anchors."""

    src: heuristics.Source
    new: ByteVocab
    todo: list[int]  # new ids to make rows for
    pieces: list[bytes]  # their bytes (b"" for a special)
    shared_new: list[int]  # new ids copied from the base ...
    shared_old: np.ndarray  # ... and the base ids they were copied from
    seed: int
    donor: DonorSide | None = None


# -- the options each method reads (validated on construction, before any model work) -------------------


def _positive(name: str, value: Any, integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
            integer and int(value) != value):
        raise ValueError(f"{name}={value!r}: a positive {'integer' if integer else 'number'}")


@dataclass(frozen=True)
class NoOptions:
    """The method reads nothing beyond the model and the tokenizers."""


@dataclass(frozen=True)
class LocalOptions:
    temperature: float = 0.3  # T of the softmax over the pieces' similarities to the new token

    def __post_init__(self):
        _positive("temperature", self.temperature)


@dataclass(frozen=True)
class GlobalOptions:
    temperature: float = 0.3
    top_k: int = 3  # neighbours in the auxiliary space
    threshold: float = 0.0  # neighbours below this similarity are dropped

    def __post_init__(self):
        _positive("temperature", self.temperature)
        _positive("top_k", self.top_k, integer=True)


@dataclass(frozen=True)
class TokenAdaptOptions(GlobalOptions):
    weight: float = 0.3  # w: the global estimate's share of the hybrid

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"weight={self.weight!r}: TokenAdapt's global share, in [0, 1]")


@dataclass(frozen=True)
class OmpAuxOptions:
    k: int = 16  # sparsity
    device: str = "auto"  # "auto": CUDA when present

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ValueError(f"k={self.k!r}: OMP's sparsity, a positive integer")


@dataclass(frozen=True)
class OmpDonorOptions(OmpAuxOptions):
    k: int = OMP_K  # the paper's
    donor: Any = None  # a causal LM that uses donor_tokenizer
    donor_tokenizer: Any = None  # default: the new tokenizer

    def __post_init__(self):
        super().__post_init__()
        if self.donor is None:
            raise ValueError("method='omp' needs donor=: a model that already uses the new tokenizer (or a "
                             f"donor-free method: {', '.join(METHODS)})")


@dataclass(frozen=True)
class ZettOptions:
    hypernet: Any = None  # a trained HyperNetwork, or its folder

    def __post_init__(self):
        if self.hypernet is None:
            raise ValueError("method='zett' needs hypernet=: a HyperNetwork, or a folder written by "
                             "`tokenshift train-hypernet`")


# -- the estimators -------------------------------------------------------------------------------------


def _tokenadapt(t: Task, o: TokenAdaptOptions) -> heuristics.Estimate:
    return heuristics.hybrid(t.src, t.pieces, o.temperature, o.top_k, o.weight, o.threshold)


def _local(t: Task, o: LocalOptions) -> heuristics.Estimate:
    return heuristics.local(t.src, t.pieces, o.temperature)


def _global(t: Task, o: GlobalOptions) -> heuristics.Estimate:
    return heuristics.global_(t.src, t.pieces, o.temperature, o.top_k, o.threshold)


def _mean(t: Task, o: NoOptions) -> heuristics.Estimate:
    return heuristics.mean(t.src, t.pieces)


def _random(t: Task, o: NoOptions) -> heuristics.Estimate:
    return heuristics.random(t.src, t.pieces, t.seed)


def _focus(t: Task, o: NoOptions) -> heuristics.Estimate:
    return heuristics.focus(t.src, t.pieces, t.shared_old)


def _omp_aux(t: Task, o: OmpAuxOptions) -> heuristics.Estimate:
    return heuristics.omp_aux(t.src, t.pieces, t.shared_old, o.k, device=o.device)


def _omp_donor(t: Task, o: OmpDonorOptions) -> heuristics.Estimate:
    """OMP over the shared tokens the donor has rows for; a token without a donor row gets FVT's mean of
    its old pieces, else (not ok) the random draw; the report names both as "(no donor row)"."""
    donor, src = t.donor, t.src
    rows = donor.rows_in.shape[0]

    def donor_id(i: int) -> int:
        got = donor.special_ids.get(t.new.special[i], -1) if i in t.new.special else donor.ids.get(t.new.pieces[i], -1)
        return got if got < rows else -1

    anchors = [(donor_id(i), j) for i, j in zip(t.shared_new, t.shared_old.tolist())]
    anchors = [(d, j) for d, j in anchors if d >= 0]
    targets = np.array([donor_id(i) for i in t.todo], dtype=np.int64)
    has = targets >= 0
    est = heuristics.omp_donor(src, donor.rows_in, donor.rows_out, targets[has],
                               np.array([d for d, _ in anchors], dtype=np.int64),
                               np.array([j for _, j in anchors], dtype=np.int64), o.k, device=o.device)
    ok = np.zeros(len(t.todo), dtype=bool)
    ok[has] = est.ok
    fvt = heuristics.mean(src, t.pieces)
    use_fvt = ~ok & fvt.ok
    rows = []
    for omp_rows, fvt_rows in zip((est.rows_in, est.rows_out), (fvt.rows_in, fvt.rows_out)):
        if fvt_rows is None:
            rows.append(None)
            continue
        full = torch.zeros(len(t.todo), fvt_rows.shape[1])
        if omp_rows is not None:
            full[torch.from_numpy(has)] = omp_rows
        rows.append(torch.where(torch.from_numpy(use_fvt)[:, None], fvt_rows, full))
    source = ["omp" if good else "mean (no donor row)" if fvt_ok else "random (no donor row)"
              for good, fvt_ok in zip(ok, use_fvt)]
    return heuristics.Estimate(rows[0], rows[1], ok | use_fvt, source)


def _zett(t: Task, o: ZettOptions) -> heuristics.Estimate:
    """Rows predicted by a ZeTT hypernetwork trained for this model and its tokenizer."""
    from tokenshift.hypernet import HyperNetwork

    src = t.src
    hn = o.hypernet if isinstance(o.hypernet, HyperNetwork) else HyperNetwork.from_pretrained(o.hypernet)
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
    rows_in, rows_out = hn.embed_pieces(t.pieces)
    ok = np.ones(len(t.pieces), dtype=bool)
    return heuristics.Estimate(rows_in, rows_out if c.separate_out else None, ok, ["zett"] * len(t.pieces))


# -- the registry ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    name: str
    estimate: Callable[[Task, Any], heuristics.Estimate]
    options: type  # the dataclass of what it reads
    needs_aux: bool  # compares token strings in the auxiliary embedder's space
    needs: str = ""  # "donor" / "hypernet": what it must be given besides the model and tokenizers
    summary: str = ""


REGISTRY: dict[str, Method] = {m.name: m for m in (
    Method("tokenadapt", _tokenadapt, TokenAdaptOptions, True, summary="local subword mix + global kNN (default)"),
    Method("local", _local, LocalOptions, True, summary="TokenAdapt's local estimate alone"),
    Method("global", _global, GlobalOptions, True, summary="TokenAdapt's global kNN alone"),
    Method("mean", _mean, NoOptions, False, summary="FVT: the mean of the old pieces' rows"),
    Method("random", _random, NoOptions, False, summary="a seeded draw matching the rows' statistics"),
    Method("focus", _focus, NoOptions, True, summary="FOCUS: sparsemax over the shared tokens"),
    Method("omp-aux", _omp_aux, OmpAuxOptions, True, summary="OMP in the auxiliary space, no donor"),
    Method("omp", _omp_donor, OmpDonorOptions, False, needs="donor", summary="OMP in a donor model's space"),
    Method("zett", _zett, ZettOptions, False, needs="hypernet", summary="a trained ZeTT hypernetwork"),
)}
METHODS = tuple(n for n, m in REGISTRY.items() if not m.needs)  # need only the model and tokenizers
DONOR_METHODS = tuple(n for n, m in REGISTRY.items() if m.needs == "donor")
TRAINED_METHODS = tuple(n for n, m in REGISTRY.items() if m.needs == "hypernet")
ALL_METHODS = tuple(REGISTRY)


def _option_names(method: Method) -> set[str]:
    return {f.name for f in fields(method.options)}


def method_options(method: str, options: Any = None, **given: Any) -> tuple[Method, Any]:
    """The method's entry and its options, from an options object or keyword arguments (not both); an
    option another method reads, or none does, is an error that names who reads it."""
    if method not in REGISTRY:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ALL_METHODS)}")
    entry = REGISTRY[method]
    given = {name: value for name, value in given.items() if value is not None}
    if options is not None:
        if given:
            raise ValueError(f"pass options= or keyword options ({', '.join(given)}), not both")
        if not isinstance(options, entry.options):
            raise ValueError(f"options= for method {method!r} is a {entry.options.__name__}, "
                             f"not a {type(options).__name__}")
        return entry, options
    foreign = {name: value for name, value in given.items() if name not in _option_names(entry)}
    if foreign:
        def shown(name: str, value: Any) -> str:
            return f"{name}={value!r}" if isinstance(value, (int, float, str)) else f"{name}="

        readers = sorted({n for name in foreign for n, m in REGISTRY.items() if name in _option_names(m)})
        where = " or ".join(repr(n) for n in readers)
        raise ValueError(f"{', '.join(shown(n, v) for n, v in foreign.items())}: "
                         + (f"only used by method={where}, not {method!r}" if readers
                            else f"not an option of any method ({method!r} reads "
                                 f"{', '.join(sorted(_option_names(entry))) or 'none'})"))
    return entry, entry.options(**given)


def report_options(options: Any) -> dict[str, Any]:
    """The options as the report records them: plain values only (a model object is not written out)."""
    out = {}
    for f in fields(options):
        value = getattr(options, f.name)
        if value is None or isinstance(value, (bool, int, float, str)):
            out[f.name] = value
        elif hasattr(value, "__fspath__"):
            out[f.name] = str(value)
    return out


def ids_by_bytes(vocab: ByteVocab, rows: int) -> dict[bytes, int]:
    """bytes -> the id below `rows` that stands for them (the one the tokenizer produces, if several)."""
    out: dict[bytes, int] = {}
    for i, piece in enumerate(vocab.pieces[:rows]):
        if piece and piece not in out:
            out[piece] = i
    for group in vocab.duplicates():
        piece = vocab.pieces[group[0]]
        made = vocab.encode_raw(piece, strict=False) if piece else []
        if len(made) == 1 and made[0] in group and made[0] < rows:
            out[piece] = made[0]
    return out


def donor_side(donor: Any, donor_tokenizer: Any, new: ByteVocab, old_by_bytes: dict[bytes, int],
               done: np.ndarray) -> DonorSide:
    """The donor's rows, after checking that its tokenizer has every byte token the base lacks."""
    dv = ByteVocab.of(donor_tokenizer)
    d_in, d_out = embedding_rows(donor)
    ids = ids_by_bytes(dv, len(dv.pieces))
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
        warnings.warn(f"{len(past)} donor token ids are past the donor's {d_in.shape[0]} embedding rows; those "
                      "tokens get FVT's mean of their old pieces instead", stacklevel=3)
    specials = {t: i for i, t in dv.special.items() if i < d_in.shape[0]}
    return DonorSide(d_in, d_out, ids, specials)
