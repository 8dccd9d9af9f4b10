"""Documents -> fixed-length training rows, with no attention across documents.

Used by `models` (training from scratch) and `transplant` (finetune, distillation), so it lives in `common`.

Every piece of a document in a row starts with BOS, and the models mask
attention by the segments BOS starts (`layers.segments_from_bos`), so packing
wastes no room and nothing leaks from one document into the next. A document
longer than the room left in a row continues in the next row as a new piece
(after a new BOS): the model reads it as text that starts mid-document, which
is also what it sees when asked to continue such text.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

IGNORE = -100  # target of padding (cross-entropy skips it)
CODE_HEADER = re.compile(r"\n\n(?=# file: )")


def split_documents(text: str) -> list[str]:
    """Documents of a shared-data file: `# file:` headers for code, else blank lines."""
    text = text.rstrip("\n")
    if not text:
        return []
    docs = CODE_HEADER.split(text) if text.startswith("# file: ") else text.split("\n\n")
    return [d for d in docs if d]


def pack(docs: Iterable[Sequence[int]], bos: int, eot: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each (N, seq_len) int64, from documents of ids (without BOS/EOT).

    A piece `doc[a:b]` reads `[bos, *doc[a:b]]` and predicts `[*doc[a:b], next]`
    where `next` is `doc[b]`, or `eot` at the document's end. The last row is
    padded (input `bos`, target IGNORE). Example, seq_len 4, docs [1, 2], [3]:
    inputs [[bos, 1, 2, bos], [bos, 3, bos, bos]], targets [[1, 2, eot, 3], [3, eot, IGNORE, IGNORE]]
    (a row that has room for BOS only predicts the next piece's first id from it).
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2 (BOS and one byte), got {seq_len}")
    rows_in: list[np.ndarray] = []
    rows_tg: list[np.ndarray] = []
    cur_in: list[np.ndarray] = []
    cur_tg: list[np.ndarray] = []
    room = seq_len
    one = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
    for doc in docs:
        doc = np.asarray(doc, dtype=np.int64)
        pos, n = 0, len(doc)
        done = n == 0
        while not done:
            take = min(room - 1, n - pos)
            done = pos + take == n
            cur_in += [one(bos), doc[pos : pos + take]]
            cur_tg += [doc[pos : pos + take], one(eot if done else doc[pos + take])]
            pos, room = pos + take, room - take - 1
            if room == 0:
                rows_in.append(np.concatenate(cur_in))
                rows_tg.append(np.concatenate(cur_tg))
                cur_in, cur_tg, room = [], [], seq_len
    if cur_in:
        rows_in.append(np.concatenate(cur_in + [np.full(room, bos, dtype=np.int64)]))
        rows_tg.append(np.concatenate(cur_tg + [np.full(room, IGNORE, dtype=np.int64)]))
    if not rows_in:
        raise ValueError("pack: no documents with any content")
    return np.stack(rows_in), np.stack(rows_tg)
