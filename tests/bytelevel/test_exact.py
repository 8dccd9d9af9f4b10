"""TokenByteModel against brute-force enumeration, and its properties.

The oracle below shares nothing with `exact.py` but the definition of a
canonical sequence (`canonical_encode`): it lists every token sequence by a
linear scan of the vocabulary, keeps the covers, and sums probabilities from
uncached full forward passes of a tiny float64 Llama.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import Oracle
from tiny import FAMILIES, TRAIN_TEXT, byte_bpe, family_tokenizer, tiny_llama

from tokenshift.bytelevel import ByteVocab
from tokenshift.bytelevel.exact import EOT, TokenByteModel
from tokenshift.bytelevel.pretok import canonical_encode


# -- fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=FAMILIES)
def setup(request):
    tok = family_tokenizer(request.param)
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=1, dtype=torch.float64)
    start = vocab.start_id
    return request.param, tok, vocab, model, start


def _prefixes(family: str, count: int, seed: int = 0) -> list[bytes]:
    """Random prefixes of the training text and hostile strings, incl. cuts inside a character."""
    rng = random.Random(seed)
    text = TRAIN_TEXT.encode("utf-8")
    hostile = [b"", b"  a", b"1234", b"I'v", b"x\n \n", b"ab", "é".encode()[:1], "a é".encode()[:3],
               b"b'a", b"ab  ", b"\n\n"]
    if family == "byte_bpe":
        hostile += [b"a\xff", b"\xe6"]  # not UTF-8: byte-level BPE spells these too
    out = list(hostile)
    while len(out) < count:
        lo = rng.randrange(len(text) - 8)
        out.append(text[lo : lo + rng.randrange(1, 6)])
    return out[:count]


# -- oracle equality ---------------------------------------------------------------------------------


FAST_COUNT = {"byte_bpe": 40, "sp_bpe": 14, "sp_unigram": 14}


def test_canonical_matches_brute_force(setup):
    _check_canonical(setup, FAST_COUNT[setup[0]])


@pytest.mark.slow
def test_canonical_matches_brute_force_many(setup):
    _check_canonical(setup, 200)


def _check_canonical(setup, count):
    family, tok, vocab, model, start = setup
    bm = TokenByteModel(model, tok, dtype=torch.float64)
    oracle = Oracle(model, vocab, start, vocab.eos_id)
    worst = 0.0
    for prefix in _prefixes(family, count):
        got = bm.next_byte_logprobs(prefix).exp().numpy()
        want = oracle.next_byte(vocab.prefix_bytes + prefix)
        worst = max(worst, float(np.abs(got - want).max()))
        assert np.allclose(got, want, atol=1e-9, rtol=0), (family, prefix, np.abs(got - want).max())
    assert worst < 1e-9


def test_all_tokenizations_match_brute_force(setup):
    family, tok, vocab, model, start = setup
    bm = TokenByteModel(model, tok, tokenizations="all", dtype=torch.float64)
    oracle = Oracle(model, vocab, start, vocab.eos_id, canonical=False)
    for prefix in _prefixes(family, 12 if family == "byte_bpe" else 5, seed=1):
        if len(prefix) > 4:
            prefix = prefix[:4]
        got = bm.next_byte_logprobs(prefix).exp().numpy()
        want = oracle.next_byte(vocab.prefix_bytes + prefix)
        assert np.allclose(got, want, atol=1e-9, rtol=0), (family, prefix)


def test_prefix_mass_and_invalid_mass_match_brute_force(setup):
    family, tok, vocab, model, start = setup
    bm = TokenByteModel(model, tok, dtype=torch.float64)
    oracle = Oracle(model, vocab, start, vocab.eos_id)
    for prefix in [b"ab b", b"ba", "é a".encode()[:2], b"1 2"]:
        state = bm.start(prefix)
        x = vocab.prefix_bytes + prefix
        got = state.trunk_logp + state.log_prefix_mass()
        assert got == pytest.approx(math.log(oracle.mass(x)), abs=1e-9)
        state.logprobs()
        firsts = {piece[0] for _, piece in oracle.tokens}
        kept = sum(oracle.mass(x + bytes([b])) for b in firsts) + sum(
            math.exp(oracle.logp(s) + float(oracle.next_token(s)[oracle.eos])) for s in oracle.spellings(x))
        assert state.invalid_mass == pytest.approx(1 - kept / oracle.mass(x), abs=1e-9)


# -- properties ------------------------------------------------------------------------------------------

BYTES = st.binary(max_size=8) | st.text(alphabet="ab é'1\n", max_size=8).map(lambda s: s.encode("utf-8"))


@pytest.fixture(scope="module")
def bpe_model():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    return TokenByteModel(tiny_llama(len(vocab.pieces), seed=2, dtype=torch.float64), tok, dtype=torch.float64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=BYTES)
def test_normalised_and_incremental_equals_fresh(bpe_model, data):
    state = bpe_model.start(b"")
    for byte in data:
        state.logprobs()  # force the full computation on the way, then keep going
        state.advance(byte)
    inc = state.logprobs()
    fresh = bpe_model.next_byte_logprobs(data)
    assert float(torch.logsumexp(fresh, 0)) == pytest.approx(0.0, abs=1e-12)
    assert not torch.isnan(fresh).any()
    assert torch.allclose(inc.exp(), fresh.exp(), atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=BYTES, u=st.floats(0, 1, exclude_max=True), temperature=st.sampled_from([0.0, 0.7, 1.0, 1.5]))
def test_lazy_sampling_picks_what_the_full_distribution_picks(bpe_model, data, u, temperature):
    from tokenshift.bytelevel.exact import pick

    lazy = bpe_model.start(data).sample(u, temperature)
    full = pick(bpe_model.next_byte_logprobs(data), u, temperature)
    assert lazy == full


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=BYTES)
def test_bounds_contain_the_distribution_and_tighten_to_it(bpe_model, data):
    full = bpe_model.next_byte_logprobs(data).exp().numpy()
    bounds = bpe_model.start(data).bounds()
    widths = [bounds.width]
    while True:
        assert (bounds.p_lo <= full + 1e-12).all() and (full <= bounds.p_hi + 1e-12).all()
        if not bounds.refine():
            break
        widths.append(bounds.width)
    assert bounds.is_exact and np.allclose(bounds.p_lo, full, atol=1e-12)
    assert widths[-1] <= widths[0] + 1e-12


# -- the Markov chain: tokenization bias removed ------------------------------------------------------


class ChainTokenLM:
    """A token LM derived exactly from a byte Markov chain pushed through a tokenizer.

    Strings over {a, b, space} of length <= L (the chain stops at L); the token
    LM's conditionals are ratios of summed string probabilities grouped by
    canonical encoding, so it puts no mass on non-canonical sequences.
    """

    ALPHABET = b"ab "
    L = 5

    def __init__(self, vocab: ByteVocab, trans: np.ndarray, stop: float):
        self.vocab, self.vocab_size, self.calls, self.eos = vocab, len(vocab.pieces), 0, vocab.eos_id
        self.trans, self.stop = trans, stop
        self.strings: dict[bytes, float] = {}
        self._walk(b"", 1.0, -1)
        self.encoded = [(tuple(canonical_encode(vocab, s)), p) for s, p in self.strings.items()]

    def _walk(self, s: bytes, p: float, state: int) -> None:
        if len(s) == self.L:
            self.strings[s] = p
            return
        if s:
            self.strings[s] = p * self.stop
            p *= 1 - self.stop
        for k, b in enumerate(self.ALPHABET):
            self._walk(s + bytes([b]), p * self.trans[state + 1, k], k)

    def next_byte(self, x: bytes) -> np.ndarray:
        """The chain's own next-byte distribution (257 slots)."""
        out = np.zeros(257)
        state = self.ALPHABET.index(x[-1]) if x else -1
        go = 1.0 if not x else 1 - self.stop
        for k, b in enumerate(self.ALPHABET):
            out[b] = go * self.trans[state + 1, k]
        out[EOT] = 0.0 if not x else self.stop
        return out

    def logprobs(self, trunk, tails):
        self.calls += 1
        rows = []
        for tail in tails:
            seq = tuple(trunk[1:]) + tuple(tail)
            mass = np.zeros(self.vocab_size)
            for enc, p in self.encoded:
                if enc[: len(seq)] == seq:
                    if len(enc) > len(seq):
                        mass[enc[len(seq)]] += p
                    else:
                        mass[self.eos] += p
            with np.errstate(divide="ignore"):
                rows.append(torch.from_numpy(np.log(mass / mass.sum())))
        return torch.stack(rows)


def test_markov_chain_recovered_exactly_where_token_conditioning_is_biased():
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    rng = np.random.default_rng(0)
    trans = rng.dirichlet(np.ones(3), size=4)
    lm = ChainTokenLM(vocab, trans, stop=0.2)
    bm = TokenByteModel(lm, tok)
    worst_naive = 0.0
    for x in [b"", b"a", b"ab", b"b", b"a b", b"ba", b"aa", b"abb", b" a"]:
        want = lm.next_byte(x)
        got = bm.next_byte_logprobs(x).exp().numpy()
        assert np.allclose(got, want, atol=1e-12), x
        # naive: condition on encode(x) and read the next token's first byte
        seq = canonical_encode(vocab, x)
        naive = np.zeros(257)
        nxt = lm.logprobs([vocab.eos_id, *seq], [()])[0].exp().numpy()
        for i, piece in enumerate(vocab.pieces):
            if piece and nxt[i] > 0:
                naive[piece[0]] += nxt[i]
        naive[EOT] = nxt[vocab.eos_id]
        worst_naive = max(worst_naive, float(np.abs(naive - want).max()))
    assert worst_naive > 0.1  # the tokenization bias the exact model removes


# -- cost and bad input ---------------------------------------------------------------------------------


def test_forward_calls_per_byte_when_generating():
    """Greedy and tempered generation: about one model call per generated token (summed over seeds)."""
    from tokenshift.bytelevel.sampling import generate_bytes

    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    bm = TokenByteModel(tiny_llama(len(vocab.pieces), seed=3), tok)
    prompt = b"ab ba"
    for temperature, slack in ((0.0, 2.0), (0.8, 1.5)):
        calls = tokens = produced = 0
        for seed in range(6):
            before = bm.forward_calls
            out = generate_bytes(bm, prompt, max_bytes=40, seed=seed, temperature=temperature)
            calls += bm.forward_calls - before - 1  # minus the prompt's own call
            tokens += len(canonical_encode(vocab, prompt + out)) - len(canonical_encode(vocab, prompt)) + 1
            produced += len(out)
        assert produced > 40
        assert calls <= slack * tokens + 2, (temperature, calls, tokens, produced)


def test_bad_inputs_are_refused_clearly():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "b": 2, "[SEP]": 3}, unk_token="[UNK]"))
    wp.normalizer = normalizers.Lowercase()
    wp.pre_tokenizer = pre_tokenizers.Whitespace()
    lossy = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", eos_token="[SEP]")
    with pytest.raises(ValueError, match="lossy"):
        TokenByteModel(tiny_llama(4), lossy)
    tok = byte_bpe()
    with pytest.raises(ValueError, match="output rows"):
        TokenByteModel(tiny_llama(100), tok)
    vocab = ByteVocab.from_tokenizer(tok)
    bm = TokenByteModel(tiny_llama(len(vocab.pieces)), tok)
    with pytest.raises(ValueError, match="context window"):
        bm.next_byte_logprobs(bytes(range(33, 127)) * 4)
    with pytest.raises(TypeError, match="bytes"):
        bm.next_byte_logprobs("ab")
    with pytest.raises(ValueError, match="tokenizations"):
        TokenByteModel(tiny_llama(len(vocab.pieces)), tok, tokenizations="some")


# -- scoring and sampling ----------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(x=BYTES, y=BYTES)
def test_score_chain_rule(bpe_model, x, y):
    from tokenshift.bytelevel import score_bytes

    whole = score_bytes(bpe_model, x + y)
    assert whole <= 1e-12
    assert whole == pytest.approx(score_bytes(bpe_model, x) + score_bytes(bpe_model, y, prefix=x), abs=1e-9)


def test_score_is_the_oracle_marginal_and_bits_per_byte_agrees():
    from tokenshift.bytelevel import bits_per_byte, score_bytes

    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    model = tiny_llama(len(vocab.pieces), seed=1, dtype=torch.float64)
    bm = TokenByteModel(model, tok, dtype=torch.float64)
    oracle = Oracle(model, vocab, vocab.bos_id, vocab.eos_id)
    for text in [b"ab ba", b"1 b'a", "é a".encode()]:
        assert score_bytes(bm, text) == pytest.approx(math.log2(oracle.mass(text)), abs=1e-9)
        end = score_bytes(bm, text, end=True)
        (c,) = oracle.spellings(text)
        assert end == pytest.approx((oracle.logp(c) + float(oracle.next_token(c)[oracle.eos])) / math.log(2), abs=1e-9)
    texts = [b"ab ba", b"b a"]
    want = -sum(score_bytes(bm, t) for t in texts) / sum(map(len, texts))
    assert bits_per_byte(bm, texts, progress=False) == pytest.approx(want)


def test_generation_is_seeded_utf8_safe_and_stops():
    from tokenshift.bytelevel import generate_bytes

    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    bm = TokenByteModel(tiny_llama(len(vocab.pieces), seed=4), tok)
    a = generate_bytes(bm, "ab \xc3".encode("latin-1")[:4], max_bytes=40, seed=7)
    assert a == generate_bytes(bm, "ab \xc3".encode("latin-1")[:4], max_bytes=40, seed=7)
    (b"ab \xc3" + a).decode("utf-8")  # the prompt's cut character is completed, nothing invalid added
    out = generate_bytes(bm, b"ab", max_bytes=200, seed=1, stop=[b" "])
    assert b" " not in out and len(out) < 200
    raw = generate_bytes(bm, b"ab", max_bytes=80, seed=3, utf8=False, temperature=2.0)
    assert isinstance(raw, bytes)
    with pytest.raises(ValueError):
        generate_bytes(bm, b"ab", top_p=0.0)


# -- speculative sampling and the token tree ------------------------------------------------------------


def test_token_tree_matches_padded_batch_and_trunk_growth():
    from tokenshift.bytelevel.exact import HFTokenLM

    model = tiny_llama(40, seed=5, dtype=torch.float64)
    tree, batch = HFTokenLM(model), HFTokenLM(model)
    trunk = [1, 5, 7, 9]
    tails = [(3, 4), (3, 6, 2), (8,), (3, 4, 4), ()]
    prefixes = sorted({t[:i] for t in tails for i in range(1, len(t) + 1)})
    want = dict(zip(prefixes, batch.logprobs(trunk, prefixes)))
    got = tree.logprobs_tree(trunk, tails)
    assert set(got) == set(prefixes) | {()}
    for p in prefixes:
        assert torch.allclose(got[p], want[p], atol=1e-12), p
    assert tree.calls == 2  # the trunk, then one packed row
    grown = trunk + [3, 6]  # keys and values gathered from the tree, not recomputed
    calls = tree.calls
    after = tree.logprobs(grown, [(2,), (2, 2)])
    assert tree.calls == calls + 1
    assert torch.allclose(after, batch.logprobs(grown, [(2,), (2, 2)]), atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=BYTES, u=st.floats(0, 1, exclude_max=True), u_accept=st.floats(0, 1, exclude_max=True),
       u_residual=st.floats(0, 1, exclude_max=True), temperature=st.sampled_from([0.7, 1.0, 1.5]),
       skew=st.floats(0.0, 1.0))
def test_speculative_step_decides_as_the_exact_distribution_does(bpe_model, data, u, u_accept, u_residual,
                                                                  temperature, skew):
    """Keep-or-correct with lazily checked candidates == the same rule on the full distribution."""
    from tokenshift.bytelevel.exact import pick

    state = bpe_model.start(data)
    draft, laws = state.propose(u, temperature)
    if not draft:
        return
    law = laws[0]
    if skew:  # any law the draft was drawn from must work: mix in a far-off one
        law = (1 - skew) * law + skew * np.full(257, 1 / 257)
    got = state.sample_against(draft[0], law, u_accept, u_residual, temperature)
    p = torch.softmax(bpe_model.next_byte_logprobs(data) / temperature, 0).numpy()
    if u_accept * law[draft[0]] < p[draft[0]]:
        want = draft[0]
    else:
        residual = np.maximum(p - law, 0.0)
        want = pick(torch.log(torch.from_numpy(residual)), u_residual)
    assert got == want


def _chain_model(seed: int = 0):
    tok = byte_bpe()
    vocab = ByteVocab.from_tokenizer(tok)
    rng = np.random.default_rng(seed)
    lm = ChainTokenLM(vocab, rng.dirichlet(np.ones(3), size=4), stop=0.1)
    return lm, TokenByteModel(lm, tok)


def test_speculative_generation_samples_the_exact_distribution():
    """Three-byte continuations from a known byte Markov chain: frequencies match, drafts are used."""
    from tokenshift.bytelevel.sampling import generate_bytes

    lm, bm = _chain_model(1)
    draws, counts = 1000, {}
    for seed in range(draws):
        out = generate_bytes(bm, b"a", max_bytes=3, seed=seed, utf8=False)
        counts[out] = counts.get(out, 0) + 1
    # exact law of the next <= 3 bytes after b"a" under the chain (end of text shortens them)
    law: dict[bytes, float] = {}

    def walk(x: bytes, p: float) -> None:
        if len(x) == 4:
            law[x[1:]] = law.get(x[1:], 0.0) + p
            return
        nxt = lm.next_byte(x)
        for b in lm.ALPHABET:
            walk(x + bytes([b]), p * nxt[b])
        law[x[1:]] = law.get(x[1:], 0.0) + p * nxt[EOT]

    walk(b"a", 1.0)
    assert set(counts) <= {k for k, v in law.items() if v > 0}
    chi2 = sum((counts.get(k, 0) - draws * v) ** 2 / (draws * v) for k, v in law.items() if v > 0)
    dof = sum(1 for v in law.values() if v > 0) - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof), (chi2, dof)  # ~5 sigma: fails only if biased
