"""Training data for every model here: text files -> documents -> packed rows of bytes or tokens.

`TextData` reads `../shared/data/<lang>.txt` (validation: `<lang>.valid.txt`)
for the languages asked for, or any UTF-8 text files; on a machine without
the corpus, `en` and `code` fall back on the built-in texts (`builtin:en`,
`builtin:code`, see `bytelevel/corpus.py`) and it says so. Documents are split as
the shared data's README says (blank lines; `# file:` headers for code), then
packed without leakage across documents (`tokenshift.common.packing`). Byte streams need
nothing else; token streams use a byte-level BPE, trained here on the same
training text when `tokenizer` names a folder that does not exist yet, and can
be rewritten for fill-in-the-middle (`fim_rate`, `fim.py`).

Batches are `{"input", "target"}`, (B, T) int64 each, and `"language"`, (B,)
int64: each row's index in `TextData.language_names`. Rows are packed per
language, so a row holds documents of one language only (FLEXITOKENS picks
its boundary prior by it; the other models ignore it). Training batches come
from an endless, seeded shuffle; the number consumed is saved in checkpoints,
so a resumed run reads exactly the batches an uninterrupted run would have.
Validation has one loader per language (bits per byte per language).
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, Iterator, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tokenshift.bytelevel.corpus import BUILTIN_PREFIX, BUILTIN_TEXTS, resolve_text, shared_data_dir

from tokenshift.common.batches import Rows, StepBatches  # noqa: F401  (re-exported: the data's batching)
from tokenshift.common.packing import pack, split_documents  # noqa: F401  (re-exported)

from .base import BOS
from .fim import FimTokens, fim_document

def take_bytes(docs: list[str], limit: int | None) -> list[str]:
    """Whole documents from the start until `limit` UTF-8 bytes; the last one cut (between characters)."""
    if limit is None:
        return docs
    out, used = [], 0
    for doc in docs:
        raw = doc.encode("utf-8")
        if used + len(raw) >= limit:
            cut = raw[: limit - used].decode("utf-8", "ignore")
            if cut:
                out.append(cut)
            break
        out.append(doc)
        used += len(raw)
    return out


def line_spans(text: str, max_chars: int) -> list[str]:
    """`text` cut into pieces of at most `max_chars` characters, at line ends where it can be.

    Example: line_spans("ab\ncd\nef", 6) -> ["ab\ncd\n", "ef"]; a longer line is cut anywhere.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    spans, cur = [], ""
    for line in text.splitlines(keepends=True):
        while len(line) > max_chars:  # a line longer than a span
            if cur:
                spans.append(cur)
                cur = ""
            spans.append(line[:max_chars])
            line = line[max_chars:]
        if len(cur) + len(line) > max_chars:
            spans.append(cur)
            cur = ""
        cur += line
    return spans + [cur] if cur else spans


def pack_languages(ids: dict[str, list[list[int]]], names: list[str], bos: int, eot: int, seq_len: int) -> Rows:
    """Rows of every language's documents, packed per language (a row never mixes two) and tagged
    with the language's index in `names`."""
    parts = [(pack(docs, bos, eot, seq_len), names.index(lang)) for lang, docs in ids.items() if docs]
    if not parts:
        raise ValueError("pack: no documents with any content")
    inputs = np.concatenate([p[0][0] for p in parts])
    targets = np.concatenate([p[0][1] for p in parts])
    languages = np.concatenate([np.full(len(p[0][0]), p[1], dtype=np.int64) for p in parts])
    return Rows(inputs, targets, languages)


class TextData(L.LightningDataModule):
    """Packed rows of bytes or tokens from the shared corpora or any text files (see the module docstring).

    Args:
        languages: shared-data names (`en`, `code`, `de`, `fr`, `es`, `ru`, `ja`) when `train_files` is unset.
        train_files: UTF-8 text files (or `builtin:en` / `builtin:code`); the language is the name before
            the first dot. Unset and without the shared corpus: the built-in texts of `languages`.
        valid_files: held-out files (default: `<name>.valid.txt` beside each training file, else its last 5%).
        stream: `bytes` (HAT, ByteLM) or `tokens` (TokenLM).
        tokenizer: a tokenizer folder; trained on the training text and saved there if missing.
        vocab_size: size of a tokenizer trained here.
        fim_rate: fraction of training documents rewritten for fill-in-the-middle (tokens only; 0.5 in
            Bavarian et al.). A tokenizer trained here gets the FIM tokens whenever fim_rate > 0.
        fim_spm_rate: fraction of the FIM documents in SPM order (the rest PSM).
        fim_span_chars: with FIM, cut training documents into spans of at most this many characters
            (at line ends) first, so a span and its FIM rewrite fit in a row (context-level FIM).
        seq_len: ids per row.
        train_bytes / valid_bytes: UTF-8 bytes read per language (None: all).
    """

    def __init__(self, languages: list[str] | None = None, train_files: list[str] | None = None,
                 valid_files: list[str] | None = None, stream: Literal["bytes", "tokens"] = "bytes",
                 tokenizer: str | None = None, vocab_size: int = 4096, fim_rate: float = 0.0,
                 fim_spm_rate: float = 0.5, fim_span_chars: int | None = None, seq_len: int = 512, batch_size: int = 16,
                 valid_batch_size: int | None = None, train_bytes: int | None = None,
                 valid_bytes: int | None = 65536, tokenizer_bytes: int = 1 << 20, seed: int = 0,
                 num_workers: int = 0):
        super().__init__()
        if stream not in ("bytes", "tokens"):
            raise ValueError(f"stream must be 'bytes' or 'tokens', got {stream!r}")
        if fim_rate and stream != "tokens":
            raise ValueError("fim_rate needs stream='tokens' (FIM uses special tokens a byte stream does not have)")
        if not 0 <= fim_rate <= 1 or not 0 <= fim_spm_rate <= 1:
            raise ValueError(f"fim_rate and fim_spm_rate are in [0, 1], got {fim_rate}, {fim_spm_rate}")
        if seq_len < 2 or batch_size < 1:
            raise ValueError(f"need seq_len >= 2 and batch_size >= 1, got {seq_len}, {batch_size}")
        self.languages = list(languages or ["en", "code", "de", "ru", "ja"])
        self.train_files, self.valid_files = train_files, valid_files
        self.stream, self.tokenizer_path, self.vocab_size = stream, tokenizer, vocab_size
        self.fim_rate, self.fim_spm_rate, self.fim_span_chars = fim_rate, fim_spm_rate, fim_span_chars
        self.seq_len, self.batch_size = seq_len, batch_size
        self.valid_batch_size = valid_batch_size or batch_size
        self.train_bytes, self.valid_bytes, self.tokenizer_bytes = train_bytes, valid_bytes, tokenizer_bytes
        self.seed, self.num_workers = seed, num_workers
        self.tokenizer: Any = None
        self.train_rows: Rows | None = None
        self.valid_rows: dict[str, Rows] = {}
        self.language_names: list[str] = []  # what a batch's "language" ids index
        self._start_batch = 0

    # -- files and documents ------------------------------------------------------------------
    def _files(self) -> list[tuple[str, str, str | None]]:
        """(language, train text, valid text or None) for every source: file paths or `builtin:` names.

        Without `train_files` the languages come from the shared corpus; where it is absent, `en`
        and `code` fall back on the built-in texts (the other languages are skipped), and it says so.
        """
        if self.train_files is None:
            folder = shared_data_dir()
            if folder is not None:
                return [(lang, str(folder / f"{lang}.txt"), str(folder / f"{lang}.valid.txt"))
                        for lang in self.languages]
            usable = [lang for lang in self.languages if lang in BUILTIN_TEXTS]
            if not usable:
                raise FileNotFoundError(f"../shared/data was not found and languages {self.languages} have no "
                                        "built-in text; pass --data.train_files FILE... (or set TOKENSHIFT_DATA)")
            skipped = [lang for lang in self.languages if lang not in usable]
            print(f"TextData: ../shared/data was not found: training on {', '.join(BUILTIN_PREFIX + x for x in usable)}"
                  + (f" ({', '.join(skipped)} skipped: no built-in text)" if skipped else "")
                  + "; pass --data.train_files FILE... to train on your own text", flush=True)
            return [(lang, BUILTIN_PREFIX + lang, None) for lang in usable]
        valid = list(self.valid_files or [])
        if valid and len(valid) != len(self.train_files):
            raise ValueError(f"{len(self.train_files)} train_files but {len(valid)} valid_files; give one per file")
        out = []
        for i, f in enumerate(self.train_files):
            name = Path(str(f)).name
            lang = name[len(BUILTIN_PREFIX):] if str(f).startswith(BUILTIN_PREFIX) else name.split(".")[0]
            sibling = Path(str(f)).with_name(name.split(".")[0] + ".valid.txt")
            out.append((lang, str(f), str(valid[i]) if valid else str(sibling) if sibling.is_file() else None))
        return out

    def documents(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(train, valid) documents per language, capped to train_bytes / valid_bytes."""
        train, valid = {}, {}
        for lang, tf, vf in self._files():
            docs = split_documents(resolve_text(tf)[1].decode("utf-8"))
            if vf is None:  # hold out the last 5% of documents (at least one)
                cut = max(1, len(docs) // 20) if len(docs) > 1 else 0
                docs, held = docs[: len(docs) - cut], docs[len(docs) - cut :] or docs
            else:
                held = split_documents(resolve_text(vf)[1].decode("utf-8"))
            train[lang] = take_bytes(docs, self.train_bytes)
            valid[lang] = take_bytes(held, self.valid_bytes)
        return train, valid

    # -- ids ----------------------------------------------------------------------------------
    def _load_tokenizer(self, train: dict[str, list[str]]) -> Any:
        from transformers import AutoTokenizer

        from .tokenlm import train_tokenizer

        path = Path(self.tokenizer_path) if self.tokenizer_path else None
        if path is not None and (path / "tokenizer.json").exists():
            return AutoTokenizer.from_pretrained(path)
        texts = [d for docs in train.values() for d in take_bytes(docs, self.tokenizer_bytes)]
        tok = train_tokenizer(texts, self.vocab_size, fim=self.fim_rate > 0)
        if path is not None:
            tok.save_pretrained(path)
        return tok

    def setup(self, stage: str | None = None) -> None:
        if self.train_rows is not None:
            return
        train, valid = self.documents()
        if self.stream == "bytes":
            bos = eot = BOS
            encode = lambda text: list(text.encode("utf-8"))  # noqa: E731
            train_ids = {lang: [encode(d) for d in docs] for lang, docs in train.items()}
        else:
            from tokenshift.bytelevel import ByteVocab
            from tokenshift.bytelevel.scoring import document_start_id

            self.tokenizer = self._load_tokenizer(train)
            vocab = ByteVocab.from_tokenizer(self.tokenizer)
            bos = eot = document_start_id(vocab)
            encode = lambda text: vocab.encode_raw(text.encode("utf-8"))  # noqa: E731  (specials stay text)
            rng = random.Random(self.seed)
            tokens = fim_token_ids(vocab) if self.fim_rate > 0 else None
            train_ids = {}
            for lang, docs in train.items():
                if tokens and self.fim_span_chars:
                    docs = [span for d in docs for span in line_spans(d, self.fim_span_chars)]
                train_ids[lang] = [fim_document(d, encode, tokens, self.fim_rate, self.fim_spm_rate, rng) if tokens
                                   else encode(d) for d in docs]
        self.bos = bos
        self.language_names = list(dict.fromkeys([*train, *valid]))
        names = self.language_names
        self.train_rows = pack_languages(train_ids, names, bos, eot, self.seq_len)
        self.valid_rows = {lang: pack_languages({lang: [encode(d) for d in docs]}, names, bos, eot, self.seq_len)
                           for lang, docs in valid.items() if docs}

    # -- loaders ------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = StepBatches(len(self.train_rows), self.batch_size, self.seed, self._start_batch, rank, world)
        return DataLoader(self.train_rows, batch_sampler=sampler, num_workers=self.num_workers)

    def val_dataloader(self) -> list[DataLoader]:
        return [DataLoader(rows, batch_size=self.valid_batch_size, num_workers=self.num_workers)
                for rows in self.valid_rows.values()]

    @property
    def valid_languages(self) -> list[str]:
        return list(self.valid_rows)

    def state_dict(self) -> dict[str, Any]:
        trainer = getattr(self, "trainer", None)
        batches = trainer.global_step * trainer.accumulate_grad_batches if trainer is not None else 0
        return {"batches": batches, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"the checkpoint was trained with data seed {state['seed']}, this run has {self.seed}")
        self._start_batch = int(state.get("batches", 0))


def fim_token_ids(vocab: Any) -> FimTokens:
    """The tokenizer's `<fim_prefix>`, `<fim_suffix>`, `<fim_middle>` ids (what `bytelevel.fim` prompts with)."""
    from tokenshift.bytelevel.fim import fim_tokens

    pre, suf, mid, _ = fim_tokens(vocab)
    return FimTokens(pre, suf, mid)
