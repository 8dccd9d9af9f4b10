"""Approximate Likelihood Matching, the maths: chunk alignment, paired data and the loss (see `distill.py`).

Pure functions over ids and log-probabilities, tested on their own; `distill.py` trains with them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from tokenshift.bytelevel import ByteVocab

LN2 = float(np.log(2.0))
SPACE_BYTES = (0x20, 0x09, 0x0A)  # space, tab, newline: a token starting with one starts a new word


# -- alignment ------------------------------------------------------------------------------------------------


def align_chunks(teacher_pieces: Sequence[bytes], student_pieces: Sequence[bytes], teacher_prefix: int = 0,
                 student_prefix: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(teacher chunk of each token, student chunk of each token, number of chunks).

    Both token sequences must spell one text after their first `*_prefix` bytes
    (a SentencePiece dummy space). A chunk ends at every byte position where both
    sequences have a token boundary; a token belongs to the chunk its last byte
    is in (a token made only of the prefix joins the first chunk).
    Example: teacher [b"ab", b"c"], student [b"a", b"bc"] -> [0, 0], [0, 0], 1.
    """
    t_text = b"".join(teacher_pieces)[teacher_prefix:]
    s_text = b"".join(student_pieces)[student_prefix:]
    if t_text != s_text:
        at = next((i for i in range(min(len(t_text), len(s_text))) if t_text[i] != s_text[i]),
                  min(len(t_text), len(s_text)))
        raise ValueError(f"align_chunks: the two tokenizations spell different bytes from byte {at} "
                         f"(teacher {t_text[at:at + 12]!r}, student {s_text[at:at + 12]!r})")
    t_ends = np.cumsum([len(p) for p in teacher_pieces], dtype=np.int64) - teacher_prefix
    s_ends = np.cumsum([len(p) for p in student_pieces], dtype=np.int64) - student_prefix
    shared = np.intersect1d(t_ends, s_ends)
    shared = shared[shared > 0]
    return (np.searchsorted(shared, t_ends, side="left"), np.searchsorted(shared, s_ends, side="left"),
            int(len(shared)))


def space_mask(vocab: ByteVocab) -> torch.Tensor:
    """(V,) bool: tokens after which a new word starts: bytes starting with space/tab/newline, or special."""
    return torch.tensor([p is None or (len(p) > 0 and p[0] in SPACE_BYTES) for p in vocab.pieces])


# -- data -----------------------------------------------------------------------------------------------------


def _safe_cut(pieces: list, ids: Sequence[int], pos: int, take: int) -> int:
    """The largest take' <= take such that cutting before ids[pos + take'] splits no UTF-8 character."""
    end = pos + take
    if end >= len(ids):
        return take
    while end > pos and pieces[ids[end]][:1] and 0x80 <= pieces[ids[end]][0] <= 0xBF:
        end -= 1
    return end - pos


def pack_pairs(teacher_vocab: ByteVocab, student_vocab: ByteVocab, texts: list[str], block_size: int
               ) -> tuple[list[dict], dict]:
    """Rows of `block_size` student ids with the teacher's ids for the same bytes and the chunk of every token.

    Each document is encoded by the student, cut into pieces that fit the room
    left in a row (at character boundaries), and each piece is read after the
    start token by both models; the teacher encodes the piece's bytes itself
    (canonically; the document start with its dummy prefix). Returns (rows,
    stats); a row holds `s_ids`, `s_chunk` (-1 for start and padding), `t_ids`,
    `t_chunk`, `seg_end` (per chunk: the last chunk of a piece).
    """
    from tokenshift.common.packing import split_documents

    sp, tp = student_vocab.pieces, teacher_vocab.pieces
    s_start, t_start = student_vocab.start_id, teacher_vocab.start_id
    rows: list[dict] = []
    stats = {"documents": 0, "pieces": 0, "skipped_pieces": 0, "chunks": 0, "student_tokens": 0,
             "teacher_tokens": 0, "bytes": 0}
    cur: dict[str, list] = {}

    def new_row() -> None:
        cur.clear()
        cur.update(s_ids=[], s_chunk=[], t_ids=[], t_chunk=[], seg_end=[])

    def close_row() -> None:
        if cur["s_ids"]:
            room = block_size - len(cur["s_ids"])
            cur["s_ids"] += [s_start] * room
            cur["s_chunk"] += [-1] * room
            rows.append({k: np.asarray(v, dtype=bool if k == "seg_end" else np.int64) for k, v in cur.items()})
        new_row()

    new_row()
    for text in texts:
        for doc in split_documents(text):
            ids = student_vocab.encode(doc.encode("utf-8"), strict=False)
            if not ids or any(sp[i] is None for i in ids):
                continue
            stats["documents"] += 1
            pos = 0
            while pos < len(ids):
                room = block_size - len(cur["s_ids"])
                take = _safe_cut(sp, ids, pos, min(room - 1, len(ids) - pos))
                if take == 0:
                    if cur["s_ids"]:
                        close_row()
                        continue
                    take = min(block_size - 1, len(ids) - pos)  # no safe cut in a whole row: cut anyway
                piece = ids[pos: pos + take]
                first = pos == 0
                pos += take
                s_prefix = len(student_vocab.prefix_bytes) if first else 0
                data = b"".join(sp[i] for i in piece)[s_prefix:]
                if not data:
                    continue
                try:
                    t_ids = teacher_vocab.encode(data, strict=False) if first else \
                        teacher_vocab.encode_raw(data, strict=False)
                    t_prefix = len(teacher_vocab.prefix_bytes) if first else 0
                    t_pieces = [tp[i] for i in t_ids]
                    if None in t_pieces:
                        raise ValueError("a special id in the teacher's encoding")
                    t_chunk, s_chunk, n = align_chunks(t_pieces, [sp[i] for i in piece], t_prefix, s_prefix)
                except ValueError:  # the teacher cannot spell these bytes: nothing to compare
                    stats["skipped_pieces"] += 1
                    continue
                c0 = len(cur["seg_end"])
                cur["s_ids"] += [s_start, *piece]
                cur["s_chunk"] += [-1, *(s_chunk + c0).tolist()]
                cur["t_ids"] += [t_start, *t_ids]
                cur["t_chunk"] += [-1, *(t_chunk + c0).tolist()]
                cur["seg_end"] += [False] * (n - 1) + [True]
                stats["pieces"] += 1
                stats["chunks"] += n
                stats["student_tokens"] += len(piece)
                stats["teacher_tokens"] += len(t_ids)
                stats["bytes"] += len(data)
                if block_size - len(cur["s_ids"]) < 2:
                    close_row()
    close_row()
    if not rows:
        raise ValueError("distill_transplant: the text has no content both tokenizers can spell; pass a non-empty "
                         "UTF-8 text")
    return rows, stats


class PairRows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def collate_pairs(rows: list[dict], teacher_pad: int) -> dict[str, torch.Tensor]:
    """A batch: ids of both models, the chunk (batch-wide numbering, -1 for none) of each predicted token, the
    flat position of each chunk's last token on each side, and which chunks end a piece."""
    b = len(rows)
    lt = max(len(r["t_ids"]) for r in rows)
    s_ids = np.stack([r["s_ids"] for r in rows])
    t_ids = np.full((b, lt), teacher_pad, dtype=np.int64)
    s_chunk = np.stack([r["s_chunk"] for r in rows])
    t_chunk = np.full((b, lt), -1, dtype=np.int64)
    offsets = np.cumsum([0] + [len(r["seg_end"]) for r in rows])
    for k, r in enumerate(rows):
        t_ids[k, : len(r["t_ids"])] = r["t_ids"]
        t_chunk[k, : len(r["t_chunk"])] = r["t_chunk"]
        s_chunk[k] = np.where(s_chunk[k] >= 0, s_chunk[k] + offsets[k], -1)
        t_chunk[k] = np.where(t_chunk[k] >= 0, t_chunk[k] + offsets[k], -1)
    n = int(offsets[-1])
    s_last = np.full(n, -1, dtype=np.int64)
    t_last = np.full(n, -1, dtype=np.int64)
    for chunk, last in ((s_chunk, s_last), (t_chunk, t_last)):
        flat = chunk.reshape(-1)
        where = np.nonzero(flat >= 0)[0]
        np.maximum.at(last, flat[where], where)
    return {"s_input": torch.from_numpy(s_ids), "t_input": torch.from_numpy(t_ids),
            "s_chunk": torch.from_numpy(s_chunk[:, 1:].copy()), "t_chunk": torch.from_numpy(t_chunk[:, 1:].copy()),
            "s_last": torch.from_numpy(s_last), "t_last": torch.from_numpy(t_last),
            "seg_end": torch.from_numpy(np.concatenate([r["seg_end"] for r in rows]))}


# -- the loss -------------------------------------------------------------------------------------------------


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of log(1/2)."""
    return torch.where(x < -LN2, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def binary_kl(log_p_teacher: torch.Tensor, log_p_student: torch.Tensor, temperature: float = 100.0,
              eps: float = 1e-6) -> torch.Tensor:
    """KL((q_t, 1 - q_t) || (q_s, 1 - q_s)) elementwise, q = p^(1/temperature) (ALM's binarised divergence).

    `eps` keeps q below 1 (log 0) when a likelihood is 1, as tokenkit does."""
    lt = log_p_teacher / temperature - eps
    ls = log_p_student / temperature - eps
    return torch.exp(lt) * (lt - ls) + (-torch.expm1(lt)) * (log1mexp(lt) - log1mexp(ls))


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, space: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each next id (B, T-1), log p that the next token is a space token, at every position (B, T))."""
    logits = logits.float()
    lse = torch.logsumexp(logits, -1)
    picked = logits[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1) - lse[:, :-1]
    spaced = torch.logsumexp(logits.masked_fill(~space, float("-inf")), -1) - lse
    return picked, spaced


def chunk_sums(logp: torch.Tensor, chunk: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """(n_chunks,): the sum of the token log-probs in each chunk (chunk -1: not summed)."""
    keep = chunk >= 0
    return logp.new_zeros(n_chunks).index_add(0, chunk[keep], logp[keep])


def alm_loss(t_chunk: torch.Tensor, s_chunk: torch.Tensor, t_space: torch.Tensor, s_space: torch.Tensor,
             seg_end: torch.Tensor, temperature: float = 100.0, merge_threshold: float = 0.1,
             debias: bool = True) -> tuple[torch.Tensor, dict]:
    """ALM over chunks, per chunk the teacher's and student's log-likelihood (and next-token-is-space log-prob).

    With `debias`, chunks are merged until one ends where the teacher's space
    probability exceeds `merge_threshold` (or a piece ends), and each merged
    chunk's likelihood includes the space probability after it. Returns (mean
    binary KL over the merged chunks, stats).
    """
    if debias:
        ends = (t_space.detach().exp() > merge_threshold) | seg_end
        group = torch.cumsum(ends.long(), 0) - ends.long()  # a group ends at (and includes) an `ends` chunk
        n = int(ends.sum())
        t_lp = t_chunk.new_zeros(n).index_add(0, group, t_chunk) + t_space[ends]
        s_lp = s_chunk.new_zeros(n).index_add(0, group, s_chunk) + s_space[ends]
    else:
        t_lp, s_lp = t_chunk, s_chunk
    t_lp, s_lp = t_lp.clamp(max=0.0), s_lp.clamp(max=0.0)
    loss = binary_kl(t_lp, s_lp, temperature).mean()
    return loss, {"chunks": int(len(t_lp)), "teacher_nats": float(-t_lp.detach().mean()),
                  "student_nats": float(-s_lp.detach().mean())}
