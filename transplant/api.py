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
from .methods import Task, donor_side, ids_by_bytes, method_options, report_options

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


def _role_ids(tok: Any, vocab: ByteVocab) -> dict[str, int]:
    return specials.declared_roles(tok, vocab.bos_id, vocab.eos_id)


def transplant(model: Any, old_tokenizer: Any, new_tokenizer: Any, method: str = "tokenadapt",
               aux_embedder: Embedder | None = None, *, options: Any = None, seed: int = 0, inplace: bool = False,
               copy_shared: bool = True, **given: Any) -> Any:
    """A copy of `model` (or `model` itself with `inplace`) that reads and writes `new_tokenizer`'s ids.

    `method`: a name in `methods.REGISTRY` (ALL_METHODS). Its options come as keywords or as its options
    dataclass (`options=`): TokenAdapt's `temperature` (T), `top_k` (k), `weight` (w: the global share),
    `threshold`; OMP's `k` (sparsity) and `device`; "omp"'s `donor` (a causal LM that uses
    `donor_tokenizer`, default the new tokenizer); "zett"'s `hypernet` (a trained `HyperNetwork` or its
    folder). An option the method does not read is an error. `aux_embedder`: a callable
    `list[str] -> (n, d)` for the methods that compare token strings (default all-MiniLM-L6-v2).
    `seed`: the random draw for rows a method has nothing for. `copy_shared=False` makes the method
    produce the shared tokens' rows too. The report is `model.transplant_report` (a `TransplantReport`).
    A GGUF model must be loaded de-quantized (`tokenshift.common.assets.load_model` does).
    """
    entry, opts = method_options(method, options, **given)
    started = time.perf_counter()
    old, new = ByteVocab.of(old_tokenizer), ByteVocab.of(new_tokenizer)
    rows_in, rows_out = embedding_rows(model)
    if rows_in.shape[0] < len(old.pieces) - sum(1 for i in old.special if i >= rows_in.shape[0]):
        raise ValueError(
            f"the model has {rows_in.shape[0]} embedding rows but its tokenizer has {len(old.pieces)} ids: "
            "pass the tokenizer the model was trained with as old_tokenizer"
        )
    report = TransplantReport(method, len(old.pieces), len(new.pieces), tied=rows_out is None,
                              options={**report_options(opts), "seed": seed, "copy_shared": copy_shared})
    base = [rows_in] if rows_out is None else [rows_in, rows_out]  # every step below runs over each matrix
    n_new = len(new.pieces)
    out = [torch.zeros(n_new, rows.shape[1]) for rows in base]
    done = np.zeros(n_new, dtype=bool)

    # 1. shared tokens, by bytes
    by_bytes = ids_by_bytes(old, rows_in.shape[0])
    shared_new = [i for i, p in enumerate(new.pieces) if p and p in by_bytes] if copy_shared else []
    shared_old = np.array([by_bytes[new.pieces[i]] for i in shared_new], dtype=np.int64)
    if shared_new:
        for rows, made in zip(base, out):
            made[torch.tensor(shared_new)] = rows[torch.from_numpy(shared_old)]
        done[shared_new] = True
    report.copied = len(shared_new)
    copied_ids = list(shared_new)
    donor = None
    if entry.needs == "donor":  # checked before any heavy work
        donor = donor_side(opts.donor, opts.donor_tokenizer or new_tokenizer, new, by_bytes, done)
    if entry.needs_aux and aux_embedder is None:
        aux_embedder = AuxEmbedder()
    src = heuristics.Source(old, rows_in, rows_out, aux_embedder)

    # 2. specials: same text, then same role; the rest start from the old specials' mean (or the donor's row)
    unplaced = _place_specials(old, new, old_tokenizer, new_tokenizer, base, out, done, report, copied_ids)
    if donor is not None:  # the donor has rows for these specials: OMP them with the other new tokens
        with_row = [i for i in unplaced if new.special[i] in donor.special_ids]
        unplaced = [i for i in unplaced if i not in with_row]
        done[with_row] = False
    if unplaced:  # an unknown marker (a chat or FIM token): the mean of the old specials' rows, a neutral start
        old_specials = [i for i in old.special if i < rows_in.shape[0]]
        pool = torch.tensor(old_specials) if old_specials else torch.arange(rows_in.shape[0])
        for rows, made in zip(base, out):
            made[torch.tensor(unplaced)] = rows[pool].mean(0)
        for i in unplaced:
            report.specials[new.special[i]] = "mean of the old special rows (no role the base has)"

    # 3. the rest, by the chosen method; the seeded random draw where it has nothing to go on
    todo = [i for i in range(n_new) if not done[i] and (new.pieces[i] or i in new.special)]
    if todo:
        task = Task(src, new, todo, [new.pieces[i] or b"" for i in todo], shared_new, shared_old, seed, donor)
        est = entry.estimate(task, opts)
        fallback = heuristics.random(src, task.pieces, seed)
        ok = torch.from_numpy(est.ok)[:, None]
        for made, guess, drawn in zip(out, (est.rows_in, est.rows_out), (fallback.rows_in, fallback.rows_out)):
            made[torch.tensor(todo)] = torch.where(ok, guess, drawn)
        for i, name in zip(todo, est.source):
            if name:
                report.by_source[name] = report.by_source.get(name, 0) + 1
            if i in new.special:
                report.specials[new.special[i]] = f"{name} from the donor's row" if name else "random"
        report.random_fallback = sum(1 for s in est.source if not s or "random" in s) if method != "random" else 0
    unused = [i for i in range(n_new) if not done[i] and not new.pieces[i] and i not in new.special]
    if unused:  # ids a sparse vocabulary leaves empty: never produced, give them the mean row
        for rows, made in zip(base, out):
            made[torch.tensor(unused)] = rows.mean(0)

    report.copied_ids = id_ranges(copied_ids)
    result = model if inplace else copy.deepcopy(model)
    _install(result, out[0], out[1] if len(out) > 1 else None, new_tokenizer, new)
    report.seconds = time.perf_counter() - started
    result.transplant_report = report
    return result


def _place_specials(old: ByteVocab, new: ByteVocab, old_tokenizer: Any, new_tokenizer: Any,
                    base: list[torch.Tensor], out: list[torch.Tensor], done: np.ndarray, report: TransplantReport,
                    copied_ids: list[int]) -> list[int]:
    """Rows for the new specials with the same text or the same role as an old one; returns those with neither."""
    n_rows = base[0].shape[0]
    old_specials = {i: t for i, t in old.special.items() if i < n_rows}
    sources = specials.special_sources(old_specials, _role_ids(old_tokenizer, old), new.special,
                                       _role_ids(new_tokenizer, new))
    unplaced: list[int] = []
    for i, text in sorted(new.special.items()):
        if i >= len(new.pieces):
            continue
        done[i] = True
        match = sources.get(i)
        if match is None:
            unplaced.append(i)
            continue
        for rows, made, j in zip(base, out, (match.input_id, match.output_id)):
            made[i] = rows[j]
        if match.input_role == specials.SAME_TEXT:
            report.specials[text] = f"{old.special[match.input_id]} (same text)"
            copied_ids.append(i)
        elif len(base) == 1 or match.input_id == match.output_id:
            report.specials[text] = f"{old.special[match.input_id]} ({match.input_role})"
            copied_ids.append(i)
        else:
            report.specials[text] = (f"input {old.special[match.input_id]} ({match.input_role}), "
                                     f"output {old.special[match.output_id]} ({match.output_role})")
    return unplaced


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
    config = model.config
    config.vocab_size = rows_in.shape[0]
    roles = _role_ids(tok, vocab)
    for role in ("bos", "eos", "pad"):
        setattr(config, f"{role}_token_id", roles.get(role))
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        for role in ("bos", "eos", "pad"):
            setattr(gen, f"{role}_token_id", roles.get(role))


def save_transplant(model: Any, tokenizer: Any, out_dir: str | Path, *, replace: bool = False,
                    into_existing: bool = False) -> Path:
    """Write the model, its tokenizer and `transplant_report.json` to `out_dir` (a folder `from_pretrained` reads).

    The folder appears whole or not at all: it is written beside `out_dir` under a hidden name and
    renamed into place at the end. An `out_dir` that exists and holds anything is refused, so no file of
    the user's is overwritten. `replace=True` swaps in the new save for an earlier one (a rerun), and is
    still refused if that folder holds a file this save does not write. `into_existing=True` writes into
    an existing folder the caller made for this (the CLI's staged output, which it renames itself).
    """
    import os
    import shutil
    import tempfile

    out = Path(out_dir)
    if not hasattr(tokenizer, "save_pretrained"):
        raise TypeError(f"cannot save a {type(tokenizer).__name__} as a Hugging Face tokenizer; pass a tokenizer "
                        "folder or a transformers tokenizer as the new tokenizer")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; save_transplant writes a folder")
    if out.is_dir() and not (into_existing or replace) and any(out.iterdir()):
        raise FileExistsError(f"{out} already holds files; save_transplant never overwrites them: pass a new or "
                              "empty folder, or replace=True to replace an earlier save_transplant folder")

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        report = getattr(model, "transplant_report", None)
        if report is not None:
            report.save(folder / "transplant_report.json")

    if into_existing and out.is_dir():
        write(out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # as a plain mkdir would make it, not mkdtemp's 0700
    try:
        write(staging)
        if out.is_dir() and any(out.iterdir()):
            _replace_folder(out, staging)
        else:
            if out.is_dir():
                out.rmdir()
            os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _replace_folder(out: Path, staging: Path) -> None:
    """Swap `staging` in for `out`, an earlier save: only if every file in `out` is one `staging` also holds."""
    import os
    import shutil

    ours = {p.relative_to(staging) for p in staging.rglob("*") if not p.is_dir()}
    foreign = sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir() and p.relative_to(out) not in ours)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FileExistsError(f"{out} holds files save_transplant does not write ({shown}); it replaces only an "
                              "earlier save, so this folder is left as it is")
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    os.rename(out, old)
    os.rename(staging, out)
    shutil.rmtree(old)
