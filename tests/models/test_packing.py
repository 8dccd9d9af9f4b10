"""Packing documents into rows (nothing lost, nothing leaks) and the TextData module (bytes and tokens,
per-language validation, a resumable endless shuffle)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.models.data import StepBatches, TextData, line_spans, split_documents, take_bytes
from tokenshift.common.packing import IGNORE, pack

BOS = 99


def unpack(inputs: np.ndarray, targets: np.ndarray, bos: int = BOS) -> list[list[int]]:
    """Documents back from packed rows: pieces after each BOS, joined until a target says end of text."""
    docs, cur = [], []
    for row_in, row_tg in zip(inputs.tolist(), targets.tolist()):
        for x, y in zip(row_in, row_tg):
            if x != bos:
                cur.append(x)
            if y == bos:  # end of text
                docs.append(cur)
                cur = []
    return docs


@given(st.lists(st.lists(st.integers(0, 20), min_size=1, max_size=30), min_size=1, max_size=8), st.integers(2, 12))
@settings(max_examples=200, deadline=None)
def test_pack_keeps_every_document_and_predicts_the_next_id(docs, seq_len):
    inputs, targets = pack(docs, BOS, BOS, seq_len)
    assert inputs.shape == targets.shape and inputs.shape[1] == seq_len
    assert (inputs[:, 0] == BOS).all()  # every row starts a (piece of a) document
    assert unpack(inputs, targets) == docs
    # inside a piece, the target is the next input
    same = (inputs[:, 1:] != BOS) & (targets[:, :-1] != IGNORE)
    assert (targets[:, :-1][same] == inputs[:, 1:][same]).all()


def test_pack_example_and_errors():
    inputs, targets = pack([[1, 2], [3]], BOS, BOS, 4)
    assert inputs.tolist() == [[BOS, 1, 2, BOS], [BOS, 3, BOS, BOS]]
    assert targets.tolist() == [[1, 2, BOS, 3], [3, BOS, IGNORE, IGNORE]]
    with pytest.raises(ValueError, match="seq_len"):
        pack([[1]], BOS, BOS, 1)
    with pytest.raises(ValueError, match="no documents"):
        pack([[]], BOS, BOS, 4)


def test_step_batches_resume_where_they_left_off():
    full = StepBatches(10, 4, seed=1)
    it = iter(full)
    first = [next(it) for _ in range(7)]  # runs across several epochs
    resumed = iter(StepBatches(10, 4, seed=1, start=3))
    assert [next(resumed) for _ in range(4)] == first[3:]
    epoch0 = sorted(sum(first[:2], []) + first[2][:2])
    assert epoch0 == list(range(10))  # each epoch is a permutation


def test_step_batches_give_ranks_disjoint_slices_of_one_stream():
    """Data parallelism: rank r's batch at step b is the r-th slice of the global batch b."""
    single = iter(StepBatches(10, 6, seed=2, start=1))
    ranks = [iter(StepBatches(10, 3, seed=2, start=1, rank=r, world_size=2)) for r in range(2)]
    for _ in range(5):  # runs across epochs
        merged = next(ranks[0]) + next(ranks[1])
        assert merged == next(single)
    with pytest.raises(ValueError, match="rank"):
        StepBatches(10, 3, seed=2, rank=2, world_size=2)


def test_split_documents_and_take_bytes():
    assert split_documents("a\nb\n\nc\n") == ["a\nb", "c"]
    code = "# file: a.py\nx = 1\n\ny = 2\n\n# file: b.py\nz = 3\n"
    assert split_documents(code) == ["# file: a.py\nx = 1\n\ny = 2", "# file: b.py\nz = 3"]
    assert take_bytes(["ab", "日本"], 5) == ["ab", "日"]  # cut between characters
    assert line_spans("ab\ncd\nef", 6) == ["ab\ncd\n", "ef"]
    assert line_spans("abcdefg\nh", 3) == ["abc", "def", "g\nh"]
    text = "x = 1\n" * 50 + "y" * 20
    assert "".join(line_spans(text, 16)) == text and all(len(s) <= 16 for s in line_spans(text, 16))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    en = "\n\n".join(f"Document {i}: the cat sat on the mat number {i}." for i in range(60))
    ja = "\n\n".join(f"文書{i}：猫がマットの上に座った。" for i in range(40))
    (folder / "en.txt").write_text(en)
    (folder / "en.valid.txt").write_text("A held out English document.\n\nAnother one.")
    (folder / "ja.txt").write_text(ja)
    return folder


def test_byte_stream_rows_and_per_language_validation(corpus):
    dm = TextData(train_files=[str(corpus / "en.txt"), str(corpus / "ja.txt")], stream="bytes", seq_len=32,
                  batch_size=4)
    dm.setup("fit")
    assert dm.valid_languages == ["en", "ja"]
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape == (4, 32) and (batch["input"][:, 0] == 256).all()
    en_valid = unpack(dm.valid_rows["en"].inputs.numpy(), dm.valid_rows["en"].targets.numpy(), 256)
    assert [bytes(d) for d in en_valid] == [b"A held out English document.", b"Another one."]
    ja_valid = unpack(dm.valid_rows["ja"].inputs.numpy(), dm.valid_rows["ja"].targets.numpy(), 256)
    assert bytes(ja_valid[-1]).decode() == "文書39：猫がマットの上に座った。"  # the last 5% held out


def test_rows_are_packed_per_language_and_batches_carry_the_language(corpus):
    """Each row holds one language's documents; batch["language"] indexes dm.language_names."""
    dm = TextData(train_files=[str(corpus / "en.txt"), str(corpus / "ja.txt")], stream="bytes", seq_len=32,
                  batch_size=8)
    dm.setup("fit")
    assert dm.language_names == ["en", "ja"]
    rows, ids = dm.train_rows.inputs, dm.train_rows.languages
    for row, lang in zip(rows.tolist(), ids.tolist()):
        text = bytes(x for x in row if x != 256).decode("utf-8", "ignore")
        has_ja = any(ord(ch) > 0x3000 for ch in text)
        assert has_ja == (lang == 1), (lang, text)  # the English rows are ASCII, the Japanese ones are not
    assert set(ids.tolist()) == {0, 1}
    batch = next(iter(dm.train_dataloader()))
    assert batch["language"].shape == (8,) and batch["language"].dtype == torch.int64
    for row, lang in zip(batch["input"].tolist(), batch["language"].tolist()):
        idx = next(i for i, r in enumerate(rows.tolist()) if r == row)
        assert ids[idx] == lang
    for i, name in enumerate(dm.valid_languages):
        valid = next(iter(dm.val_dataloader()[i]))
        assert (valid["language"] == dm.language_names.index(name)).all()


def test_token_stream_trains_and_reuses_a_tokenizer(corpus, tmp_path):
    kw = dict(train_files=[str(corpus / "en.txt")], stream="tokens", vocab_size=300, seq_len=16, batch_size=2,
              tokenizer=str(tmp_path / "tok"))
    dm = TextData(**kw)
    dm.setup("fit")
    assert (tmp_path / "tok" / "tokenizer.json").exists()
    again = TextData(**kw)
    again.setup("fit")
    torch.testing.assert_close(again.train_rows.inputs, dm.train_rows.inputs)
    text = dm.tokenizer.decode(dm.train_rows.inputs[0].tolist())
    assert text.startswith("<|endoftext|>Document 0: the cat")


def test_data_module_errors(corpus):
    with pytest.raises(ValueError, match="stream"):
        TextData(stream="chars")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fim_rate needs stream='tokens'"):
        TextData(stream="bytes", fim_rate=0.5)
    with pytest.raises(ValueError, match="valid_files"):
        TextData(train_files=[str(corpus / "en.txt")], valid_files=["a", "b"])._files()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TextData(train_files=[str(corpus / "missing.txt")]).setup("fit")
