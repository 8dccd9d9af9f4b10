"""OMP transplant (Goddard & Fernandes Neto): exact sparse recovery, k=1, donors, tied/untied, errors, devices."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from tiny import byte_bpe, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.transplant import ALL_METHODS, transplant
from tokenshift.transplant.heuristics.omp import apply_codes, batch_omp

RENAMED = 6  # tokens the new vocabulary renames: the base lacks them, the donor has them


def _untied(model, shift: float = 0.5):
    m = copy.deepcopy(model)
    m.config.tie_word_embeddings = False
    m.lm_head.weight = torch.nn.Parameter(m.lm_head.weight.detach().clone() + shift)
    return m


def _tied(model):
    m = copy.deepcopy(model)
    m.config.tie_word_embeddings = True
    m.lm_head.weight = m.model.embed_tokens.weight
    return m


@pytest.fixture(scope="module")
def setup():
    """A base model, its tokenizer, and a new vocabulary that renames a few multi-byte tokens."""
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    base = tiny_llama(len(vocab.pieces), seed=3, dtype=torch.float32)
    multi = [i for i, p in enumerate(vocab.pieces) if p and len(p) >= 2]
    targets = multi[:RENAMED]
    new = ByteVocab(**{**vocab.__dict__, "pieces": list(vocab.pieces)})
    for i in targets:
        new.pieces[i] = b"\x00zz" + vocab.pieces[i]  # no longer shared with the base
    anchors = [i for i, p in enumerate(new.pieces) if p and i not in targets]
    return base, tok, new, targets, anchors


def _wide_llama(vocab_size: int, hidden: int = 128):
    """A donor of another width than the base (OMP only moves coefficients between the spaces)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(11)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def _donor_with_sparse_rows(setup, tied: bool, seed: int = 0, sparsity: int = 3):
    """A donor for the new vocabulary whose rows of the renamed tokens are `sparsity`-sparse mixes of anchors.

    128-d rows drawn at random, 266 anchors: OMP finds a 3-sparse support with certainty here (in the base's
    32 dimensions a first pick can go wrong, and then no method reproduces the coefficients)."""
    base, tok, new, targets, anchors = setup
    donor = _wide_llama(len(new.pieces))
    donor = _tied(donor) if tied else _untied(donor, shift=0.0)
    gen = torch.Generator().manual_seed(seed)
    codes = {}
    with torch.no_grad():
        for matrix in ("in",) if tied else ("in", "out"):
            w = (donor.get_input_embeddings() if matrix == "in" else donor.get_output_embeddings()).weight
            w.normal_(generator=gen)  # well-spread rows: OMP finds the true support
            for t in targets:
                picked = [anchors[int(j)] for j in torch.randperm(len(anchors), generator=gen)[:sparsity]]
                coef = torch.randn(sparsity, generator=gen)
                w[t] = coef @ w[picked]
                codes[(matrix, t)] = (picked, coef)
    return donor, codes


def test_batch_omp_recovers_a_sparse_combination_exactly():
    gen = torch.Generator().manual_seed(0)
    atoms = torch.randn(400, 48, generator=gen, dtype=torch.float64)
    support = torch.stack([torch.randperm(400, generator=gen)[:4] for _ in range(32)])
    coef = torch.randn(32, 4, generator=gen, dtype=torch.float64)
    y = apply_codes(support, coef, atoms)
    idx, got = batch_omp(y, atoms, k=64)
    torch.testing.assert_close(apply_codes(idx, got, atoms), y, atol=1e-10, rtol=0)
    for b in range(32):  # the true support, and zeros in the slots it no longer needed
        assert set(idx[b][got[b] != 0].tolist()) == set(support[b].tolist())


def test_batch_omp_matches_least_squares_on_its_support():
    gen = torch.Generator().manual_seed(1)
    atoms, y = torch.randn(300, 40, generator=gen), torch.randn(16, 40, generator=gen)
    idx, coef = batch_omp(y, atoms, k=12)
    for b in range(16):
        ref = torch.linalg.lstsq(atoms[idx[b]].T.double(), y[b].double()).solution.float()
        torch.testing.assert_close(coef[b], ref, atol=1e-4, rtol=1e-4)
    residual = (apply_codes(idx, coef, atoms) - y).norm(dim=1)
    _, coef8 = batch_omp(y, atoms, k=8)
    assert (residual < (apply_codes(idx[:, :8], coef8, atoms) - y).norm(dim=1) + 1e-6).all()


def test_k1_is_nearest_anchor_copying():
    """k = 1: the anchor of largest |cosine|, coefficient <y, a> / ||a||^2 (1 when y is that anchor)."""
    gen = torch.Generator().manual_seed(2)
    atoms, y = torch.randn(200, 24, generator=gen, dtype=torch.float64), torch.randn(10, 24, generator=gen,
                                                                                       dtype=torch.float64)
    y[0] = atoms[17]
    idx, coef = batch_omp(y, atoms, k=1)
    cos = torch.nn.functional.normalize(y, dim=1) @ torch.nn.functional.normalize(atoms, dim=1).T
    assert idx[:, 0].tolist() == cos.abs().argmax(1).tolist()
    a = atoms[idx[:, 0]]
    torch.testing.assert_close(coef[:, 0], (y * a).sum(1) / (a * a).sum(1))
    assert idx[0, 0] == 17 and coef[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("base_tied", [True, False])
@pytest.mark.parametrize("donor_tied", [True, False])
def test_omp_transplant_reproduces_sparse_donor_rows_in_the_base(setup, base_tied, donor_tied):
    """The donor row is sum_j c_j donor[a_j]; the base row must come out as sum_j c_j base[a_j], exactly."""
    base, tok, new, targets, anchors = setup
    base = _tied(base) if base_tied else _untied(base)
    donor, codes = _donor_with_sparse_rows(setup, donor_tied)
    out = transplant(base, tok, new, method="omp", donor=donor)
    report = out.transplant_report
    assert report.by_source == {"omp": RENAMED} and report.random_fallback == 0 and report.options["k"] == 64
    b_in, b_out = base.get_input_embeddings().weight, base.get_output_embeddings().weight
    for t in targets:
        picked, coef = codes[("in", t)]
        torch.testing.assert_close(out.get_input_embeddings().weight[t], coef @ b_in[picked], atol=1e-4, rtol=1e-4)
        if not base_tied:  # the head: its own codes when the donor's head is untied, else the input codes
            picked, coef = codes[("in" if donor_tied else "out", t)]
            torch.testing.assert_close(out.get_output_embeddings().weight[t], coef @ b_out[picked], atol=1e-4,
                                       rtol=1e-4)
    keep = [i for i in range(len(new.pieces)) if i not in targets]
    assert torch.equal(out.get_input_embeddings().weight[keep], b_in[keep])
    assert (out.get_output_embeddings().weight.data_ptr() == out.get_input_embeddings().weight.data_ptr()) \
        == base_tied


def test_omp_k1_copies_the_base_row_of_the_donors_nearest_anchor(setup):
    base, tok, new, targets, anchors = setup
    donor = _tied(tiny_llama(len(new.pieces), seed=5, dtype=torch.float32))
    with torch.no_grad():
        w = donor.get_input_embeddings().weight
        for n, t in enumerate(targets):
            w[t] = w[anchors[n * 7]]  # the donor says: this token is that shared token
    out = transplant(base, tok, new, method="omp", donor=donor, k=1)
    for n, t in enumerate(targets):
        torch.testing.assert_close(out.get_input_embeddings().weight[t], base.get_input_embeddings().weight[
            anchors[n * 7]])


def test_omp_is_deterministic(setup):
    base, tok, new, _, _ = setup
    donor = tiny_llama(len(new.pieces), seed=7, dtype=torch.float32)
    a = transplant(base, tok, new, method="omp", donor=donor, k=8)
    b = transplant(base, tok, new, method="omp", donor=donor, k=8)
    assert torch.equal(a.get_input_embeddings().weight, b.get_input_embeddings().weight)
    assert torch.equal(a.get_output_embeddings().weight, b.get_output_embeddings().weight)


def test_donor_vocabulary_not_covering_the_target_is_a_clear_error(setup):
    base, tok, new, _, _ = setup
    donor = tiny_llama(len(new.pieces), seed=7, dtype=torch.float32)

    def no_aux(strings):  # OMP needs no aux embedder: the check must come before any heavy work
        raise AssertionError("embedded strings before checking the donor")

    with pytest.raises(ValueError, match=r"donor_tokenizer does not cover new_tokenizer: 6 of the 6 tokens"):
        transplant(base, tok, new, method="omp", donor=donor, donor_tokenizer=tok, aux_embedder=no_aux)


def test_donor_ids_past_its_rows_fall_back_to_fvt(setup):
    """mergekit PR #657: a tokenizer with ids past the donor's embedding matrix must not index out of bounds."""
    base, tok, new, targets, _ = setup
    order = [i for i in range(len(new.pieces)) if i not in targets[:2]] + targets[:2]  # two renamed ids last
    moved = ByteVocab(**{**new.__dict__, "pieces": [new.pieces[i] for i in order],
                         "special": {order.index(i): s for i, s in new.special.items()}})
    donor = tiny_llama(len(new.pieces) - 2, seed=7, dtype=torch.float32)  # no rows for the last two ids
    with pytest.warns(UserWarning, match="past the donor's"):
        out = transplant(base, tok, new, method="omp", donor=donor, donor_tokenizer=moved)
    assert out.transplant_report.by_source == {"omp": RENAMED - 2, "mean (no donor row)": 2}
    assert torch.isfinite(out.get_input_embeddings().weight).all()


def test_omp_bad_options(setup):
    base, tok, new, _, _ = setup
    donor = tiny_llama(len(new.pieces), seed=7, dtype=torch.float32)
    with pytest.raises(ValueError, match="needs donor="):
        transplant(base, tok, new, method="omp")
    with pytest.raises(ValueError, match="only used by method='omp'"):
        transplant(base, tok, new, method="mean", donor=donor)
    with pytest.raises(ValueError, match="k=0"):
        transplant(base, tok, new, method="omp", donor=donor, k=0)
    with pytest.raises(ValueError, match="k=4"):
        transplant(base, tok, new, method="mean", k=4)
    with pytest.raises(ValueError, match="same D"):
        batch_omp(torch.zeros(2, 3), torch.zeros(4, 5))
    assert "omp" in ALL_METHODS and "omp-aux" in ALL_METHODS


def test_omp_aux_recovers_rows_that_follow_the_aux_space(setup):
    """Donor-free OMP: if base rows are a linear map of the aux vectors, coding a new token's aux vector
    over the anchors' aux vectors gives (nearly) its true row; FVT's mean cannot."""
    base, tok, new, targets, anchors = setup
    vocab = ByteVocab.from_tokenizer(tok)
    gen = torch.Generator().manual_seed(4)
    table = torch.randn(len(vocab.pieces), 16, generator=gen)
    lookup = {p.decode("utf-8", "replace"): table[i] for i, p in enumerate(vocab.pieces) if p}
    for t in targets:  # the renamed token's string means what the original token meant
        lookup[(b"\x00zz" + vocab.pieces[t]).decode("utf-8", "replace")] = table[t]

    def aux(strings):
        return torch.stack([lookup.get(s, torch.zeros(16)) for s in strings]).numpy()

    model = copy.deepcopy(base)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(table @ torch.randn(16, 32, generator=gen))
    true = model.get_input_embeddings().weight.detach()[targets]
    cos = {}
    for method in ("omp-aux", "mean"):
        got = transplant(model, tok, new, method=method, aux_embedder=aux).get_input_embeddings().weight[targets]
        cos[method] = float(torch.nn.functional.cosine_similarity(got, true, dim=1).mean().detach())
    assert cos["omp-aux"] > 0.999 > cos["mean"], cos


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_path_matches_cpu():
    gen = torch.Generator().manual_seed(3)
    atoms, y = torch.randn(2000, 64, generator=gen), torch.randn(300, 64, generator=gen)
    i_cpu, c_cpu = batch_omp(y, atoms, k=16, device="cpu")
    i_gpu, c_gpu = batch_omp(y, atoms, k=16, device="cuda")
    assert i_gpu.device.type == "cpu"
    same = (i_cpu == i_gpu).all(1)
    assert same.float().mean() > 0.95  # float32 ties may break differently on another device
    torch.testing.assert_close(c_gpu[same], c_cpu[same], atol=1e-3, rtol=1e-3)


def test_no_warnings_on_a_clean_donor(setup):
    base, tok, new, _, _ = setup
    donor = tiny_llama(len(new.pieces), seed=7, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        transplant(base, tok, new, method="omp", donor=donor, k=4)
    assert np.isfinite(donor.get_input_embeddings().weight.detach().numpy()).all()
