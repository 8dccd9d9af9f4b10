"""transplant(): exact copies where tokens are shared, every method on tiny models, reload, bad input."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from tiny import byte_bpe, sp_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant import METHODS, save_transplant, transplant
from tokenshift.transplant.heuristics import sparsemax

OTHER_TEXT = "the cat sat on the mat; a bat ate a rat. ab ba 12 34 \u00e9t\u00e9 " * 30


def hashing_embedder(strings, dim: int = 64) -> np.ndarray:
    """A cheap deterministic stand-in for MiniLM: hashed character bigrams, L2-normalised."""
    out = np.zeros((len(strings), dim), dtype=np.float32)
    for r, s in enumerate(strings):
        s = f"^{s.strip().lower()}$"
        for a, b in zip(s, s[1:]):
            out[r, int(hashlib.md5((a + b).encode()).hexdigest(), 16) % dim] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture(scope="module")
def old():
    tok = byte_bpe()
    model = tiny_llama(len(ByteVocab.from_tokenizer(tok).pieces), seed=3, dtype=torch.float32)
    return model, tok


def _untied(model):
    import copy

    m = copy.deepcopy(model)
    m.config.tie_word_embeddings = False
    m.lm_head.weight = torch.nn.Parameter(m.lm_head.weight.detach().clone() + 0.5)
    return m


def test_own_tokenizer_gives_identical_weights(old):
    model, tok = old
    new = transplant(model, tok, tok, method="tokenadapt", aux_embedder=hashing_embedder)
    assert torch.equal(new.get_input_embeddings().weight, model.get_input_embeddings().weight)
    assert torch.equal(new.get_output_embeddings().weight, model.get_output_embeddings().weight)
    assert new.transplant_report.copied == len([p for p in ByteVocab.from_tokenizer(tok).pieces if p])


def test_one_renamed_token_changes_only_its_row(old):
    model, tok = old
    vocab = ByteVocab.from_tokenizer(tok)
    target = next(i for i, p in enumerate(vocab.pieces) if p and len(p) >= 3)
    renamed = ByteVocab(**{**vocab.__dict__, "pieces": list(vocab.pieces)})
    renamed.pieces[target] = b"\x00zz" + vocab.pieces[target]  # no longer shared with the old vocabulary
    for base in (model, _untied(model)):
        new = transplant(base, tok, renamed, method="mean")
        for get in ("get_input_embeddings", "get_output_embeddings"):
            a, b = getattr(base, get)().weight, getattr(new, get)().weight
            changed = (a != b).any(1).nonzero().flatten().tolist()
            assert changed == [target], (get, changed)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("target", ["byte_bpe_other", "sp_bpe"])
def test_every_method_gives_finite_rows_that_reload(old, method, target, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    model, tok = old
    if target == "sp_bpe":  # SentencePiece as an HF tokenizer, saved with the model
        from tokenizers import SentencePieceBPETokenizer  # noqa: F401

        folder = tmp_path / "sp"
        folder.mkdir()
        (folder / "tokenizer.model").write_bytes(sp_bpe("", "bpe", 270).serialized_model_proto())
        (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
        new_tok = AutoTokenizer.from_pretrained(folder)
    else:
        new_tok = byte_bpe(280, ("<|endoftext|>",), OTHER_TEXT)
    for tied, base in (("tied", model), ("untied", _untied(model))):
        new = transplant(base, tok, new_tok, method=method, aux_embedder=hashing_embedder)
        vocab = ByteVocab.from_tokenizer(new_tok)
        w = new.get_input_embeddings().weight
        assert w.shape == (len(vocab.pieces), model.config.hidden_size)
        assert torch.isfinite(w).all() and torch.isfinite(new.get_output_embeddings().weight).all()
        assert new.config.vocab_size == len(vocab.pieces)
        report = new.transplant_report
        assert report.copied > 0 and report.method == method
        out = save_transplant(new, new_tok if isinstance(new_tok, PreTrainedTokenizerFast) or hasattr(
            new_tok, "save_pretrained") else new_tok, tmp_path / f"{method}-{target}-{tied}")
        again = AutoModelForCausalLM.from_pretrained(out)
        assert torch.equal(again.get_input_embeddings().weight, w)
        assert json.loads((out / "transplant_report.json").read_text())["method"] == method
        ids = torch.tensor([[vocab.bos_id or 0, *vocab.encode(b"ab ba")]])
        assert torch.isfinite(again(input_ids=ids).logits).all()


def _hidden_token_cosines(model, tok, aux, rows=None, share=0.05, seed=0):
    """Hide `share` of the multi-byte tokens from the old vocabulary, predict their rows, return mean cosines."""
    import copy

    vocab = ByteVocab.from_tokenizer(tok)
    m = model
    if rows is not None:
        m = copy.deepcopy(model)
        with torch.no_grad():
            m.get_input_embeddings().weight.copy_(rows)
    true = m.get_input_embeddings().weight.detach()
    multi = [i for i, p in enumerate(vocab.pieces) if p and len(p) >= 2 and i < true.shape[0]]
    hidden = sorted(np.random.default_rng(seed).choice(multi, size=max(5, int(len(multi) * share)),
                                                       replace=False).tolist())
    masked = ByteVocab(**{**vocab.__dict__, "pieces": list(vocab.pieces)})
    for i in hidden:  # the old vocabulary without them: they become new tokens
        masked.pieces[i] = None
    cos = {}
    for method in ("tokenadapt", "mean", "random"):
        new = transplant(m, masked, vocab, method=method, aux_embedder=aux)
        got = new.get_input_embeddings().weight.detach()[hidden]
        cos[method] = float(torch.nn.functional.cosine_similarity(got, true[hidden], dim=1).mean())
    return cos


def test_hidden_shared_tokens_are_reconstructed_better_by_tokenadapt(old):
    """Hide 5% of the shared tokens and predict their rows (tiny model).

    A random tiny model has no structure to recover, so its rows are made to
    follow the auxiliary space (a linear map of each token's string
    embedding, plus noise), the assumption TokenAdapt's global step rests on;
    the SmolLM2 version of this test (slow) checks it on real embeddings."""
    model, tok = old
    vocab = ByteVocab.from_tokenizer(tok)
    gen = torch.Generator().manual_seed(0)
    texts = [p.decode("utf-8", "replace") if p else "" for p in vocab.pieces]
    aux = torch.from_numpy(hashing_embedder(texts))
    rows = aux @ torch.randn(aux.shape[1], model.config.hidden_size, generator=gen)
    rows += 0.05 * rows.std() * torch.randn(rows.shape, generator=gen)
    cos = _hidden_token_cosines(model, tok, hashing_embedder, rows=rows[: model.config.vocab_size])
    assert cos["tokenadapt"] > cos["mean"] > cos["random"], cos


@pytest.mark.slow
def test_hidden_shared_tokens_on_smollm2():
    from tokenshift.assets import load_model

    model, tok = load_model("smollm2")
    cos = _hidden_token_cosines(model, tok, None)
    assert cos["tokenadapt"] > cos["mean"] > cos["random"], cos


def test_sparsemax_is_a_sparse_distribution():
    z = torch.tensor([[3.0, 1.0, 0.2, -1.0], [0.0, 0.0, 0.0, 0.0]])
    p = sparsemax(z)
    assert torch.allclose(p.sum(1), torch.ones(2))
    assert (p[0, 2:] == 0).all() and torch.allclose(p[1], torch.full((4,), 0.25))


def test_bad_inputs(old, tmp_path):
    model, tok = old
    with pytest.raises(ValueError, match="unknown method"):
        transplant(model, tok, tok, method="magic")
    big = byte_bpe(320, ("<|endoftext|>",), OTHER_TEXT)
    small_model = tiny_llama(100, seed=0)
    with pytest.raises(ValueError, match="embedding rows"):
        transplant(small_model, big, tok, method="mean")


def test_cli_transplant_writes_nothing_on_failure(tmp_path, capsys):
    from tokenshift.cli import main

    out = tmp_path / "out"
    code = main(["transplant", "--model", "smollm2", "--tokenizer", str(tmp_path / "missing"), "--out", str(out)])
    assert code != 0 and not out.exists()
    assert "error" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    code = main(["transplant", "--model", "smollm2", "--tokenizer", "gpt2", "--out", str(out), "--eval", str(empty)])
    assert code != 0 and not out.exists()


@pytest.mark.slow
def test_cli_transplant_smollm2_to_gpt2_reloads(tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tokenshift.bytelevel.scoring import token_bits_per_byte
    from tokenshift.cli import main

    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 20)
    out = tmp_path / "out"
    assert main(["transplant", "--model", "smollm2", "--tokenizer", "gpt2", "--method", "mean", "--out", str(out),
                 "--eval", str(text)]) == 0
    report = json.loads((out / "transplant_report.json").read_text())
    model, tok = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    again = token_bits_per_byte(model, tok, [text.read_bytes()], progress=False)["bits_per_byte"]
    assert again == pytest.approx(report["eval"][str(text)]["after"]["bits_per_byte"], rel=1e-5)


def test_save_transplant_never_overwrites_and_appears_whole(old, tmp_path, monkeypatch):
    """A folder holding anything is refused (the user's files stay); a save that dies midway leaves
    neither the folder nor its hidden staging copy."""
    model, tok = old
    new = transplant(model, tok, tok, method="mean")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="never overwrites"):
        save_transplant(new, tok, mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]

    def dies(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(tok), "save_pretrained", dies)
    with pytest.raises(KeyboardInterrupt):
        save_transplant(new, tok, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    monkeypatch.undo()
    out = save_transplant(new, tok, tmp_path / "fresh")
    assert (out / "config.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "mine"]


def test_save_transplant_replace_swaps_an_earlier_save_only(old, tmp_path):
    """replace=True reruns into an earlier save; a folder with a file it does not write is left whole."""
    model, tok = old
    out = save_transplant(transplant(model, tok, tok, method="mean"), tok, tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())
    again = save_transplant(transplant(model, tok, tok, method="random"), tok, out, replace=True)
    assert sorted(p.name for p in again.iterdir()) == before
    assert json.loads((again / "transplant_report.json").read_text())["method"] == "random"
    (out / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="notes.txt"):
        save_transplant(transplant(model, tok, tok, method="mean"), tok, out, replace=True)
    assert (out / "notes.txt").read_text() == "keep"
    assert json.loads((out / "transplant_report.json").read_text())["method"] == "random"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
