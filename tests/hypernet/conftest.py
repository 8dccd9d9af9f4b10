"""Tiny bases for the hypernet tests: a 2-layer Llama over the tiny byte-level BPE (untied and tied)."""
from __future__ import annotations

import pytest
import torch
from tiny import byte_bpe, tiny_llama

OTHER_TEXT = "the cat sat on the mat; a bat ate a rat. ab ba 12 34 \u00e9t\u00e9 Gr\u00fc\u00dfe \u6771\u4eac \U0001f600\n" * 30


@pytest.fixture(scope="session")
def base():
    """(model, tokenizer): untied head, float32."""
    from tokenshift.bytelevel import ByteVocab

    tok = byte_bpe()
    return tiny_llama(len(ByteVocab.from_tokenizer(tok).pieces), seed=3, dtype=torch.float32), tok


@pytest.fixture(scope="session")
def tied_base(base):
    import copy

    model, tok = base
    tied = copy.deepcopy(model)
    tied.config.tie_word_embeddings = True
    tied.lm_head.weight = tied.model.embed_tokens.weight
    return tied, tok


@pytest.fixture(scope="session")
def other_tokenizer():
    """A byte-level BPE trained on other text: some tokens shared with the base, most not."""
    return byte_bpe(400, ("<|endoftext|>",), OTHER_TEXT)


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    """Real text that is on every machine: Python's own standard-library source."""
    import inspect
    import json as json_module
    import textwrap

    return [inspect.getsource(textwrap), inspect.getsource(json_module.decoder), OTHER_TEXT]
