"""Readers of each tokenizer family's *model* (not its `decode`): the bytes of every token id.

Each reader returns a `Read`, the fields `ByteVocab.from_tokenizer` builds a vocabulary from; this module
knows the file formats (tokenizers JSON, SentencePiece protos, tiktoken ranks), `vocab.py` the byte view.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from typing import Any, Callable, NamedTuple


class Read(NamedTuple):
    """What a reader found in a tokenizer; `lossy` lists the reasons it is lossy (none: lossless)."""

    pieces: list[bytes | None]
    special: dict[int, str]
    family: str  # "byte_bpe" | "sentencepiece" | "tiktoken" | "wordpiece"
    dummy: bool  # it adds a dummy-prefix space
    lossy: list[str]
    bos: int | None
    eos: int | None
    encode_text: Callable[[str], list[int]]
    byte_token: dict[int, int]
    backend: Any  # the encoder object (pre-tokenizer access)
    engine: str  # "tokenizers", "sentencepiece" or "tiktoken"


_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (256 entries; shared, do not mutate).

    Printable Latin-1 bytes map to themselves; the other 68 map to U+0100.. in
    order, so `Ġ` (U+0120) is the space byte 0x20.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def read_tokenizer(tok: Any) -> Read:
    """Read any supported tokenizer object (see `vocab.py`'s docstring for the families)."""
    kind = type(tok).__module__ + "." + type(tok).__name__
    if _is_tiktoken(tok):
        return _from_tiktoken(tok)
    if hasattr(tok, "serialized_model_proto") or kind.startswith("sentencepiece."):
        return _from_sentencepiece(tok)
    if hasattr(tok, "backend_tokenizer"):
        return _from_hf_backend(tok.backend_tokenizer, tok)
    if kind.startswith("tokenizers.") and hasattr(tok, "to_str"):
        return _from_hf_backend(tok, None)
    if hasattr(tok, "sp_model"):
        return _from_sentencepiece(tok.sp_model, hf=tok)
    raise TypeError(
        f"ByteVocab.from_tokenizer: unsupported tokenizer type {kind}. Pass a Hugging Face "
        "fast tokenizer (AutoTokenizer.from_pretrained(dir)), a tokenizers.Tokenizer, a "
        "sentencepiece.SentencePieceProcessor, or a tiktoken.Encoding."
    )


# -- Hugging Face tokenizers -------------------------------------------------------------


def spec_parts(node: Any) -> list[dict]:
    """Flatten a tokenizers JSON component (Sequence or single) into its parts."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        parts = node.get("normalizers") or node.get("pretokenizers") or node.get("decoders") or []
        return [p for part in parts for p in spec_parts(part)]
    return [node]


def _from_hf_backend(backend: Any, hf_tok: Any) -> Read:
    from tokenizers import Tokenizer

    spec = json.loads(backend.to_str())
    model = spec["model"]
    normalizers = spec_parts(spec.get("normalizer"))
    pretoks = spec_parts(spec.get("pre_tokenizer"))
    decoders = spec_parts(spec.get("decoder"))
    types = {p["type"] for p in pretoks} | {d["type"] for d in decoders}
    byte_level = "ByteLevel" in types
    wordpiece = model["type"] in ("WordPiece", "WordLevel")
    metaspace = next((p for p in pretoks if p["type"] == "Metaspace"), None)
    replacement = metaspace.get("replacement", "▁") if metaspace else "▁"

    lossy: list[str] = []
    dummy = False
    nodummy_spec = copy.deepcopy(spec)
    kept_norms = []
    for norm in normalizers:
        if norm["type"] == "Prepend":
            dummy = True
        elif norm["type"] == "Replace" and norm.get("content") == replacement:
            kept_norms.append(norm)
        else:
            kept_norms.append(norm)
            lossy.append(f"normalizer {norm['type']}")
    nodummy_spec["normalizer"] = {"type": "Sequence", "normalizers": kept_norms} if kept_norms else None
    for part in spec_parts(nodummy_spec.get("pre_tokenizer")):
        if part["type"] == "Metaspace":
            scheme = part.get("prepend_scheme", "always" if part.get("add_prefix_space", True) else "never")
            dummy = dummy or scheme != "never"
            part["prepend_scheme"] = "never"
            part.pop("add_prefix_space", None)
        if part["type"] == "ByteLevel" and part.get("add_prefix_space"):
            dummy = True
            part["add_prefix_space"] = False
    nodummy_spec["post_processor"] = None
    # a tokenizer.json may pad or truncate every encoding (sentence-transformers ship
    # padding to 128 and truncation at 512): that would add [PAD] ids and cut long texts
    nodummy_spec["padding"] = None
    nodummy_spec["truncation"] = None
    encoder = Tokenizer.from_str(json.dumps(nodummy_spec))
    encoder.encode_special_tokens = True  # "<|endoftext|>" typed by a user is text

    size = backend.get_vocab_size(with_added_tokens=True)
    added = {a["id"]: a for a in spec.get("added_tokens", [])}
    size = max([size] + [i + 1 for i in added])
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    pieces: list[bytes | None] = [None] * size
    special: dict[int, str] = {}
    byte_token: dict[int, int] = {}
    fallback = bool(model.get("byte_fallback"))
    for token_id in range(size):
        content = backend.id_to_token(token_id)
        if content is None:
            continue
        info = added.get(token_id)
        if info is not None and (info.get("special") or model["type"] == "Unigram" and content in ("<s>", "</s>")):
            special[token_id] = content
            continue
        if info is not None:
            pieces[token_id] = content.encode("utf-8")
            continue
        if byte_level:
            try:
                pieces[token_id] = bytes(byte_decoder[c] for c in content)
            except KeyError:  # a piece outside the byte alphabet: treat as literal text
                pieces[token_id] = content.encode("utf-8")
        elif wordpiece:
            prefix = model.get("continuing_subword_prefix", "##")
            pieces[token_id] = (content[len(prefix) :] if content.startswith(prefix) else content).encode("utf-8")
        else:
            match = _BYTE_PIECE.match(content)
            if fallback and match:
                pieces[token_id] = bytes([int(match.group(1), 16)])
            else:
                pieces[token_id] = content.replace(replacement, " ").encode("utf-8")
        if len(pieces[token_id]) == 1 and (byte_level or _BYTE_PIECE.match(content)):
            byte_token.setdefault(pieces[token_id][0], token_id)
    unk = model.get("unk_token")
    if unk is not None and model["type"] == "Unigram" and isinstance(model.get("unk_id"), int):
        special[model["unk_id"]] = str(model["vocab"][model["unk_id"]][0])
        pieces[model["unk_id"]] = None
    elif isinstance(unk, str) and backend.token_to_id(unk) is not None:
        special[backend.token_to_id(unk)] = unk
        pieces[backend.token_to_id(unk)] = None
    if wordpiece:
        lossy.append("WordPiece drops the spaces between words")
    if unk is not None and not byte_level and not fallback:
        lossy.append("characters outside the vocabulary become the unknown token (no byte fallback)")

    family = "byte_bpe" if byte_level else "wordpiece" if wordpiece else "sentencepiece"
    bos = getattr(hf_tok, "bos_token_id", None) if hf_tok is not None else None
    eos = getattr(hf_tok, "eos_token_id", None) if hf_tok is not None else None

    def encode_text(text: str) -> list[int]:
        return encoder.encode(text, add_special_tokens=False).ids

    return Read(pieces, special, family, dummy, lossy, bos, eos, encode_text, byte_token, encoder, "tokenizers")


# -- SentencePiece ------------------------------------------------------------------------


def _from_sentencepiece(sp: Any, hf: Any = None) -> Read:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    norm = proto.normalizer_spec
    dummy = bool(norm.add_dummy_prefix)
    lossy = []
    if norm.name not in ("identity", "") or len(norm.precompiled_charsmap) > 0:
        lossy.append(f"normalizer {norm.name!r}")
    if norm.remove_extra_whitespaces:
        lossy.append("remove_extra_whitespaces collapses runs of spaces")
    if not proto.trainer_spec.byte_fallback:
        lossy.append("characters outside the vocabulary become <unk> (no byte fallback)")
    # encode user text with the dummy prefix switched off: we add it as bytes ourselves
    proto.normalizer_spec.add_dummy_prefix = False
    encoder = spm.SentencePieceProcessor()
    encoder.LoadFromSerializedProto(proto.SerializeToString())

    pieces: list[bytes | None] = []
    special: dict[int, str] = {}
    byte_token: dict[int, int] = {}
    Piece = pb.ModelProto.SentencePiece
    for token_id, piece in enumerate(proto.pieces):
        if piece.type in (Piece.CONTROL, Piece.UNKNOWN, Piece.UNUSED):
            pieces.append(None)
            special[token_id] = piece.piece
        elif piece.type == Piece.BYTE:
            value = int(_BYTE_PIECE.match(piece.piece).group(1), 16)
            pieces.append(bytes([value]))
            byte_token[value] = token_id
        else:
            pieces.append(piece.piece.replace("▁", " ").encode("utf-8"))

    def encode_text(text: str) -> list[int]:
        return encoder.encode(text)

    bos = sp.bos_id() if sp.bos_id() >= 0 else None
    eos = sp.eos_id() if sp.eos_id() >= 0 else None
    return Read(pieces, special, "sentencepiece", dummy, lossy, bos, eos, encode_text, byte_token, encoder,
                "sentencepiece")


# -- tiktoken -----------------------------------------------------------------------------


def _is_tiktoken(tok: Any) -> bool:
    try:
        import tiktoken
    except ImportError:
        return False
    return isinstance(tok, tiktoken.Encoding)


def _from_tiktoken(enc: Any) -> Read:
    """Token bytes from tiktoken's public `decode_single_token_bytes` (ids the rank file skips: None)."""
    special = dict(sorted((enc.encode_single_token(s), s) for s in enc.special_tokens_set))
    pieces: list[bytes | None] = [None] * enc.n_vocab
    for i in range(enc.n_vocab):
        if i not in special:
            try:
                pieces[i] = enc.decode_single_token_bytes(i)
            except KeyError:  # an id the rank file leaves unused
                pass
    byte_token = {p[0]: i for i, p in enumerate(pieces) if p is not None and len(p) == 1}
    eot = special and next((i for i, s in special.items() if s == "<|endoftext|>"), None)

    def encode_text(text: str) -> list[int]:
        return enc.encode(text, disallowed_special=())

    return Read(pieces, special, "tiktoken", False, [], eot, eot, encode_text, byte_token, enc, "tiktoken")
