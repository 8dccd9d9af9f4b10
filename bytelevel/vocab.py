"""The byte view of any tokenizer: which bytes each token id stands for.

Everything exact in tokenshift (byte marginals, healing, ensembles, transplant
by bytes) needs `token_bytes(id)`, taken from the tokenizer's *model* (the
byte-level alphabet, SentencePiece pieces with `▁` and `<0xNN>`, tiktoken
ranks), never from `decode([id])`, which strips, merges and replaces bytes.

Families read:
- Hugging Face `tokenizers` (fast tokenizers, or a `tokenizers.Tokenizer`):
  byte-level BPE (GPT-2, SmolLM2, Llama-3), Metaspace / SentencePiece-style BPE
  and Unigram (`▁`, dummy prefix, `<0xNN>` byte fallback), WordPiece.
- `sentencepiece.SentencePieceProcessor` (`.model` files: Mistral, Llama-2).
- `tiktoken.Encoding` (cl100k, Qwen).

Dummy prefix. SentencePiece models put a `▁` before the first word; those bytes
are the tokenizer's, not the user's. The convention here: the model reads
`vocab.prefix_bytes + user_bytes` (`prefix_bytes` is `b" "` for a dummy-prefix
tokenizer, `b""` otherwise), `encode(user_bytes)` returns the ids of exactly
that, and `decode_bytes(ids)` drops `prefix_bytes` again. A user's own leading
space is kept (it becomes a second `▁`, as SentencePiece itself does).

Bytes that are not UTF-8. Tokenizers read text; a byte that belongs to no valid
character is encoded as its own single-byte token (byte-level BPE and tiktoken
have all 256, SentencePiece byte fallback has `<0xNN>`); the valid runs around
it are encoded as text. A tokenizer without such a token cannot encode it and
`encode` says so.

Lossy tokenizers (lowercasing, accent stripping, normalizers, `<unk>` without
byte fallback, WordPiece's dropped spaces) are still viewable, but report
`lossless=False` with the reason; exact byte modelling refuses them.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .readers import bytes_to_unicode, read_tokenizer, spec_parts  # noqa: F401  (bytes_to_unicode, spec_parts: re-exported)
from .utf8 import utf8_runs

# A text that exercises what lossy tokenizers break: case, accents, a decomposed
# (non-NFC) character, rare scripts, emoji, whitespace runs, control characters.
LOSSLESS_PROBE = (
    "Hello World  x\n\n\t  y ÉCOLE naïve e\u0301 ﬁ ① Ω Ωmega 東京 ñ 😀 🧑\u200d💻 "
    "\u0000\u007f \u2028 ᚠᛇ ⠀ ︀ 𝔘 ᄀ ٠١ x"
)

@dataclass
class ByteVocab:
    """Bytes of every token id, special ids, and a canonical byte encoder.

    `pieces[i]` is the bytes of token `i`, or `None` for a special/control id
    (and for ids a sparse vocabulary leaves unused). Build with `from_tokenizer`.
    """

    pieces: list[bytes | None]
    special: dict[int, str]  # id -> its text form, for tokens that stand for no bytes
    family: str  # "byte_bpe" | "sentencepiece" | "tiktoken" | "wordpiece"
    prefix_bytes: bytes  # b" " when the tokenizer adds a dummy prefix
    lossless: bool
    lossy_reason: str
    bos_id: int | None
    eos_id: int | None
    _encode_text: Callable[[str], list[int]] = field(repr=False)
    _byte_token: dict[int, int] = field(repr=False, default_factory=dict)
    name: str = ""
    _backend: Any = field(repr=False, default=None)  # the encoder object (pre-tokenizer access)
    engine: str = ""  # the library behind `backend`: "tokenizers", "sentencepiece" or "tiktoken"

    # -- construction ---------------------------------------------------------------
    @classmethod
    def of(cls, tokenizer_or_vocab: Any) -> "ByteVocab":
        """A ByteVocab as given, or read from a tokenizer: what every function taking either calls."""
        return tokenizer_or_vocab if isinstance(tokenizer_or_vocab, cls) else cls.from_tokenizer(tokenizer_or_vocab)

    @classmethod
    def from_tokenizer(cls, tok: Any, name: str = "") -> "ByteVocab":
        """Read any supported tokenizer object (see the module docstring)."""
        kind = type(tok).__module__ + "." + type(tok).__name__
        r = read_tokenizer(tok)
        vocab = cls(pieces=r.pieces, special=r.special, family=r.family, prefix_bytes=b" " if r.dummy else b"",
                    lossless=not r.lossy, lossy_reason="; ".join(r.lossy), bos_id=r.bos, eos_id=r.eos,
                    _encode_text=r.encode_text, _byte_token=r.byte_token, _backend=r.backend, engine=r.engine)
        vocab.name = name or getattr(tok, "name_or_path", "") or getattr(tok, "name", "") or kind
        vocab._check_lossless()
        return vocab

    # -- the byte view ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.pieces)

    @property
    def backend(self) -> Any:
        """The encoder object `engine` names (a `tokenizers.Tokenizer`, a SentencePiece processor or a
        tiktoken `Encoding`): what pre-tokenizer-aware code (pretok.py) reads."""
        return self._backend

    def token_bytes(self, token_id: int) -> bytes:
        """Bytes of `token_id`; a special token has none and raises."""
        if not 0 <= token_id < len(self.pieces):
            raise IndexError(f"token id {token_id} is outside this vocabulary of {len(self.pieces)} ids")
        piece = self.pieces[token_id]
        if piece is None:
            raise ValueError(
                f"token {token_id} ({self.special.get(token_id, 'unused id')!r}) is a special/control "
                "token and stands for no bytes; check `vocab.is_special(id)` first."
            )
        return piece

    @property
    def start_id(self) -> int:
        """The token a document starts after: `<|endoftext|>` when the vocabulary has it (pretraining packs
        documents after it; an instruct model's BOS may be a chat marker, e.g. SmolLM2's `<|im_start|>`),
        else BOS, else EOS."""
        named = next((i for i, text in self.special.items() if text == "<|endoftext|>"), None)
        start = named if named is not None else self.bos_id if self.bos_id is not None else self.eos_id
        if start is None:
            raise ValueError("the tokenizer has no <|endoftext|>, BOS or EOS token to start a document with")
        return start

    def is_special(self, token_id: int) -> bool:
        return self.pieces[token_id] is None

    def byte_token(self, byte: int) -> int | None:
        """The id of the single-byte token for `byte` (byte-level or `<0xNN>`), if any."""
        return self._byte_token.get(byte)

    def duplicates(self) -> list[list[int]]:
        """Groups of ids whose bytes are identical (byte fallback vs piece, Gemma duplicates)."""
        groups: dict[bytes, list[int]] = defaultdict(list)
        for i, piece in enumerate(self.pieces):
            if piece is not None:
                groups[piece].append(i)
        return [ids for ids in groups.values() if len(ids) > 1]

    # -- encoding ---------------------------------------------------------------------
    def encode(self, data: bytes, strict: bool = True) -> list[int]:
        """Canonical ids for the user's bytes `data` (dummy prefix included, no BOS/EOS).

        Special-token strings inside `data` are text, never special ids. For a
        lossless vocabulary the ids always spell `prefix_bytes + data`: a
        character the tokenizer cannot spell raises ValueError (`strict=False`
        returns the tokenizer's ids anyway, e.g. to count tokens).
        """
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"encode: expected bytes, got {type(data).__name__}; use text.encode('utf-8')")
        return self.encode_raw(self.prefix_bytes + bytes(data), strict=strict)

    def encode_raw(self, data: bytes, strict: bool = True) -> list[int]:
        """Canonical ids for `data` exactly as the model reads it (no dummy prefix added)."""
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"encode_raw: expected bytes, got {type(data).__name__}; use text.encode('utf-8')")
        ids: list[int] = []
        for text, raw in utf8_runs(bytes(data)):
            if text is not None:
                run = self._encode_text(text)
                if strict and self.lossless:
                    self._check_spelled(run, raw)
                ids.extend(run)
                continue
            single = self._byte_token.get(raw[0])
            if single is None:
                raise ValueError(self._unspellable_byte_message(raw[0]))
            ids.append(single)
        return ids

    def _unspellable_byte_message(self, byte: int) -> str:
        """Why a lone (non-UTF-8) byte cannot be encoded: a partial byte alphabet is not "no alphabet"."""
        where = f"encode: byte 0x{byte:02x} is not valid UTF-8 here and tokenizer {self.name!r}"
        have = len(self._byte_token)
        if have == 0:
            return f"{where} has no single-byte tokens at all (no byte-level alphabet or byte fallback), so it cannot spell it."
        return (
            f"{where} has no single-byte token for it: its byte alphabet lacks {256 - have} of the 256 bytes, "
            "this one among them, so this tokenizer cannot spell it (remove the byte or use another tokenizer)."
        )

    def _check_spelled(self, ids: list[int], raw: bytes) -> None:
        """Raise when the tokenizer's ids for a valid UTF-8 run do not spell `raw`.

        A byte-level BPE whose alphabet lacks a byte (SmolLM2 has no token for
        0x04, ...) silently drops that character; a lossless view must say so.
        """
        pieces = self.pieces
        if all(pieces[i] is not None for i in ids) and b"".join(pieces[i] for i in ids) == raw:  # type: ignore[misc]
            return
        got = b"".join(pieces[i] or b"" for i in ids)
        at = next((k for k in range(min(len(got), len(raw))) if got[k] != raw[k]), min(len(got), len(raw)))
        char = raw[at:].decode("utf-8", errors="replace")[:1] if at < len(raw) else ""
        what = f"character {char!r} (U+{ord(char):04X})" if char else "the end of the text"
        raise ValueError(
            f"encode: tokenizer {self.name!r} cannot spell {what}: its tokens for this text give "
            f"{got[max(0, at - 8) : at + 8]!r} where the input has {raw[max(0, at - 8) : at + 8]!r} "
            "(the tokenizer drops or rewrites it; remove it from the text or use another tokenizer)."
        )

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The user's bytes for `ids` (special ids skipped, dummy prefix removed)."""
        raw = b"".join(self.pieces[i] or b"" for i in ids)
        if self.prefix_bytes and raw.startswith(self.prefix_bytes):
            raw = raw[len(self.prefix_bytes) :]
        return raw

    def unreachable(self) -> list[int]:
        """Ids that the tokenizer never produces when encoding their own bytes.

        Tokens that are not valid UTF-8 on their own (a byte-level piece of a
        character) are left out: alone they cannot be text.
        """
        out = []
        for i, piece in enumerate(self.pieces):
            if piece is None:
                continue
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                continue
            try:
                if self.encode_raw(piece) != [i]:
                    out.append(i)
            except ValueError:  # the tokenizer cannot even spell these bytes
                out.append(i)
        return out

    def _check_lossless(self) -> None:
        if not self.lossless:
            return
        probe = LOSSLESS_PROBE.encode("utf-8")
        try:
            got = self.decode_bytes(self.encode(probe))
        except ValueError as err:
            got, self.lossy_reason = b"", str(err)
        if got != probe:
            self.lossless = False
            self.lossy_reason = self.lossy_reason or (
                "encoding then joining token bytes does not give the input back "
                f"(probe {probe[:40]!r}... came back as {got[:40]!r}...)"
            )

    def require_lossless(self, what: str) -> None:
        """Raise a clear error when a lossy tokenizer is used for exact work."""
        if not self.lossless:
            raise ValueError(
                f"{what}: tokenizer {self.name!r} is lossy ({self.lossy_reason}); exact byte "
                "probabilities are only defined when its tokens spell out the input bytes."
            )
