"""HyperNetwork: shapes, seeds, save/load, decomposition into base pieces, and clear errors."""
from __future__ import annotations

import json

import pytest
import torch
from tiny import byte_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.hypernet import HyperNetwork


def test_predict_embeddings_has_one_row_per_new_id(base, other_tokenizer):
    model, tok = base
    hn = HyperNetwork.from_base(model, tok, hidden_size=32)
    rows_in, rows_out = hn.predict_embeddings(other_tokenizer, batch_size=64, progress=False)
    n = len(ByteVocab.from_tokenizer(other_tokenizer).pieces)
    assert rows_in.shape == rows_out.shape == (n, model.config.hidden_size)
    assert torch.isfinite(rows_in).all() and torch.isfinite(rows_out).all()
    assert not torch.equal(rows_in, rows_out)  # untied base: a separate output head


def test_special_token_takes_the_base_row_of_the_same_text(base, other_tokenizer):
    model, tok = base
    hn = HyperNetwork.from_base(model, tok)
    rows_in, rows_out = hn.predict_embeddings(other_tokenizer, progress=False)
    new_id = other_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    old_id = tok.convert_tokens_to_ids("<|endoftext|>")
    torch.testing.assert_close(rows_in[new_id], model.model.embed_tokens.weight[old_id].detach())
    torch.testing.assert_close(rows_out[new_id], model.lm_head.weight[old_id].detach())


def test_special_token_without_a_same_text_base_special_takes_its_roles_rows():
    """As transplant places specials (`common.specials`): a new `<|doc|>` declared BOS and EOS reads like
    the base's `<s>` and is predicted like its `</s>`; `[CLS]` has no role the base has and gets the mean
    of the base specials' rows."""
    tok = byte_bpe(300, ("<s>", "</s>"))  # and <|endoftext|>, which byte_bpe always adds
    model = tiny_llama(len(ByteVocab.from_tokenizer(tok).pieces), seed=3, dtype=torch.float32)
    new = byte_bpe(300, ("<|doc|>", "[CLS]"))
    new.bos_token = new.eos_token = "<|doc|>"
    rows_in, rows_out = HyperNetwork.from_base(model, tok, hidden_size=32).predict_embeddings(new, progress=False)
    emb, head = model.model.embed_tokens.weight.detach(), model.lm_head.weight.detach()
    bos, eos, eot = tok.convert_tokens_to_ids(["<s>", "</s>", "<|endoftext|>"])
    doc, cls = new.convert_tokens_to_ids(["<|doc|>", "[CLS]"])
    assert torch.equal(rows_in[doc], emb[bos]) and torch.equal(rows_out[doc], head[eos])
    torch.testing.assert_close(rows_in[cls], emb[[bos, eos, eot]].mean(0))
    torch.testing.assert_close(rows_out[cls], head[[bos, eos, eot]].mean(0))


def test_tied_base_gets_equal_input_and_output_rows(tied_base, other_tokenizer):
    model, tok = tied_base
    hn = HyperNetwork.from_base(model, tok)
    assert not hn.config.separate_out and hn.head_out is None
    rows_in, rows_out = hn.predict_embeddings(other_tokenizer, progress=False)
    assert torch.equal(rows_in, rows_out)


def test_same_seed_same_network_other_seed_another(base):
    model, tok = base
    pieces = [b" the", b"\xc3\xa9t\xc3\xa9", b"a", b"\xf0\x9f\x98"]  # incl. an emoji cut mid-character
    a = HyperNetwork.from_base(model, tok, seed=0).embed_pieces(pieces)
    b = HyperNetwork.from_base(model, tok, seed=0).embed_pieces(pieces)
    c = HyperNetwork.from_base(model, tok, seed=1).embed_pieces(pieces)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a[0], c[0])


def test_save_load_roundtrip_predicts_the_same(base, other_tokenizer, tmp_path):
    model, tok = base
    hn = HyperNetwork.from_base(model, tok, seed=5, num_layers=2, max_pieces=4)
    hn.save_pretrained(tmp_path / "hn")
    again = HyperNetwork.from_pretrained(tmp_path / "hn")
    assert again.config == hn.config
    torch.testing.assert_close(again.predict_embeddings(other_tokenizer, progress=False),
                               hn.predict_embeddings(other_tokenizer, progress=False), rtol=0, atol=0)
    config = json.loads((tmp_path / "hn" / "config.json").read_text())
    assert config["format"] == "tokenshift-hypernet" and config["version"] == 1


def test_newer_format_version_is_refused(base, tmp_path):
    model, tok = base
    HyperNetwork.from_base(model, tok).save_pretrained(tmp_path / "hn")
    path = tmp_path / "hn" / "config.json"
    path.write_text(path.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(ValueError, match="version 99"):
        HyperNetwork.from_pretrained(tmp_path / "hn")


def test_surface_forms_truncate_to_max_pieces_and_use_fallback_when_empty(base):
    model, tok = base
    hn = HyperNetwork.from_base(model, tok, max_pieces=3)
    vocab = ByteVocab.from_tokenizer(tok)
    long = "\u6771\u4eac\U0001f600".encode()  # 10 bytes the tiny BPE spells byte by byte
    ids, mask = hn.surface_forms([long, b"", b"a"])
    assert ids.shape == (3, 3)
    assert ids[0].tolist() == vocab.encode_raw(long)[:3] and mask[0].all()
    assert ids[1, 0] == hn.config.base_vocab and mask[1].tolist() == [True, False, False]  # the fallback row
    assert ids[2, 0] == vocab.encode_raw(b"a")[0] and mask[2].sum() == 1


def test_decomposition_is_the_same_as_the_transplant_heuristics(base, other_tokenizer):
    """One decomposition serves FVT, TokenAdapt and the hypernet (tokenshift.bytelevel.decompose)."""
    from tokenshift.transplant.heuristics import Source

    model, tok = base
    hn = HyperNetwork.from_base(model, tok, max_pieces=64)
    src = Source(ByteVocab.from_tokenizer(tok), model.model.embed_tokens.weight.detach(), None, None)
    for piece in [p for p in ByteVocab.from_tokenizer(other_tokenizer).pieces if p][:200]:
        ids, mask = hn.surface_forms([piece])
        assert ids[0][mask[0]].tolist() == src.decompose(piece)


def test_bad_inputs_give_clear_errors(base, tmp_path):
    model, tok = base
    with pytest.raises(TypeError, match="unknown HyperNetwork option"):
        HyperNetwork.from_base(model, tok, layers=3)
    with pytest.raises(ValueError, match="max_pieces"):
        HyperNetwork.from_base(model, tok, max_pieces=0)
    with pytest.raises(ValueError, match="num_heads"):
        HyperNetwork.from_base(model, tok, hidden_size=30, num_heads=4)
    from tiny import tiny_llama

    with pytest.raises(ValueError, match="pass the tokenizer the base model was trained with"):
        HyperNetwork.from_base(tiny_llama(100, dtype=torch.float32), tok)  # 273 token ids, 100 rows
    with pytest.raises(FileNotFoundError, match="not a hypernetwork folder"):
        HyperNetwork.from_pretrained(tmp_path / "nothing")
    hn = HyperNetwork.from_base(model, tok, max_pieces=2)
    with pytest.raises(ValueError, match="max_pieces is 2"):
        hn(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool))
