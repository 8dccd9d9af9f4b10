"""transplant(method="zett"): shared rows copied, the rest predicted, a model that saves and reloads; CLI."""
from __future__ import annotations

import pytest
import torch

from tokenshift.bytelevel import ByteVocab
from tokenshift.hypernet import HyperNetwork
from tokenshift.transplant import save_transplant, transplant


@pytest.fixture(scope="module")
def hypernet_dir(base, tmp_path_factory):
    model, tok = base
    folder = tmp_path_factory.mktemp("hn") / "hypernet"
    HyperNetwork.from_base(model, tok, seed=0).save_pretrained(folder)
    return folder


def test_zett_transplant_copies_shared_predicts_the_rest_and_reloads(base, other_tokenizer, hypernet_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = base
    new = transplant(model, tok, other_tokenizer, method="zett", hypernet=str(hypernet_dir))
    old_v, new_v = ByteVocab.from_tokenizer(tok), ByteVocab.from_tokenizer(other_tokenizer)
    old_ids = {p: i for i, p in enumerate(old_v.pieces) if p}
    shared = [i for i, p in enumerate(new_v.pieces) if p in old_ids]
    fresh = [i for i, p in enumerate(new_v.pieces) if p and p not in old_ids]
    assert shared and fresh
    rows_in = new.get_input_embeddings().weight.detach()
    torch.testing.assert_close(rows_in[shared], model.model.embed_tokens.weight[[old_ids[new_v.pieces[i]] for i in shared]])
    pred_in, pred_out = HyperNetwork.from_pretrained(hypernet_dir).predict_embeddings(other_tokenizer, progress=False)
    torch.testing.assert_close(rows_in[fresh], pred_in[fresh])
    torch.testing.assert_close(new.get_output_embeddings().weight.detach()[fresh], pred_out[fresh])
    assert new.transplant_report.by_source == {"zett": len(fresh)}

    save_transplant(new, other_tokenizer, tmp_path / "out")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32)
    ids = torch.tensor([other_tokenizer.encode("the cat sat on the mat")])
    torch.testing.assert_close(again(input_ids=ids).logits, new(input_ids=ids).logits)


def test_copy_shared_false_predicts_every_token(base, other_tokenizer, hypernet_dir):
    model, tok = base
    hn = HyperNetwork.from_pretrained(hypernet_dir)
    new = transplant(model, tok, other_tokenizer, method="zett", hypernet=hn, copy_shared=False)
    pred_in, _ = hn.predict_embeddings(other_tokenizer, progress=False)
    with_bytes = [i for i, p in enumerate(ByteVocab.from_tokenizer(other_tokenizer).pieces) if p]
    torch.testing.assert_close(new.get_input_embeddings().weight.detach()[with_bytes], pred_in[with_bytes])
    assert new.transplant_report.copied == 0


def test_zett_on_a_tied_model_stays_tied(tied_base, other_tokenizer):
    model, tok = tied_base
    new = transplant(model, tok, other_tokenizer, method="zett", hypernet=HyperNetwork.from_base(model, tok))
    assert new.get_output_embeddings().weight.data_ptr() == new.get_input_embeddings().weight.data_ptr()


def test_bad_zett_inputs_give_clear_errors(base, tied_base, other_tokenizer, hypernet_dir):
    model, tok = base
    with pytest.raises(ValueError, match="needs hypernet="):
        transplant(model, tok, other_tokenizer, method="zett")
    with pytest.raises(ValueError, match="only used by method='zett'"):
        transplant(model, tok, other_tokenizer, method="mean", hypernet=str(hypernet_dir))
    with pytest.raises(ValueError, match="tied"):  # a hypernet for the untied base, given the tied model
        transplant(tied_base[0], tok, other_tokenizer, method="zett", hypernet=str(hypernet_dir))
    with pytest.raises(FileNotFoundError, match="not a hypernetwork folder"):
        transplant(model, tok, other_tokenizer, method="zett", hypernet=str(hypernet_dir.parent / "missing"))


def test_cli_transplant_with_zett(base, other_tokenizer, hypernet_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    from tokenshift.cli import main

    model, tok = base
    model.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    other_tokenizer.save_pretrained(tmp_path / "newtok")
    args = ["transplant", "--model", str(tmp_path / "base"), "--tokenizer", str(tmp_path / "newtok"),
            "--method", "zett", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "--method zett needs --hypernet" in capsys.readouterr().err
    assert main(args + ["--hypernet", str(hypernet_dir)]) == 0
    assert "zett" in capsys.readouterr().out
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert again.get_input_embeddings().weight.shape[0] == len(ByteVocab.from_tokenizer(other_tokenizer).pieces)
