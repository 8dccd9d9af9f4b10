"""The boundary visualiser: segments of a seeded tiny FLEXITOKENS model, text/HTML/PNG renderers, `tokenshift segment`."""
from __future__ import annotations

import html

import pytest
import torch

from tokenshift.cli import main
from tokenshift.models.base import BOS
from tokenshift.models.flexitokens import FlexiTokensConfig, FlexiTokensLM
from tokenshift.models.segment import (bytes_per_segment, characters, render_html, render_png, render_text,
                                       segment)

TINY = dict(d_byte=32, d_backbone=48, n_pre=1, n_backbone=1, n_post=1, n_heads_byte=2, n_heads_backbone=2,
            max_bytes=512, init_std=0.2, priors={"en": (0.3, 0.02)})
ASCII = "The cat sat on the mat, and the dog sat on the log.\n\tx = y + 1"
MIXED = "Grüße, мир! 日本語です。 🙂"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("flexi") / "model"
    FlexiTokensLM(FlexiTokensConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FlexiTokensLM(FlexiTokensConfig(**TINY)).eval()


def test_segments_concatenate_back_and_follow_the_model_boundaries(model):
    for text in (ASCII, MIXED, ""):
        segments = segment(model, text)
        assert b"".join(segments) == text.encode() and all(segments)
    segments = segment(model, ASCII)
    assert 2 < len(segments) < len(ASCII)  # an untrained predictor starts at rate ~α = 0.3
    with torch.no_grad():
        b = model.run(torch.tensor([[BOS, *ASCII.encode()]])).boundaries[0, 1:]
    starts = [0] + [i for i in b.nonzero()[:, 0].tolist() if i > 0]
    assert [len(s) for s in segments] == [z - a for a, z in zip(starts, starts[1:] + [len(ASCII)])]
    assert bytes_per_segment(segments) == pytest.approx(len(ASCII.encode()) / len(segments))
    assert segment(model, ASCII) == segments  # deterministic (eval boundaries)
    torch.manual_seed(0)
    thresholded = FlexiTokensLM(FlexiTokensConfig(**TINY, eval_boundaries="threshold")).eval()
    assert segment(model, MIXED, "threshold") == segment(thresholded, MIXED)  # an override for one call
    assert model.config.eval_boundaries == "sampled"  # and undone
    with pytest.raises(ValueError, match="context window"):
        segment(model, "x" * 600)


def test_text_rendering_marks_each_segment_start():
    segments = [b"The", b" cat", b" sat"]
    assert render_text(segments) == "The| cat| sat"
    split = [b"a\xc3", b"\xa9b"]  # a boundary inside "é"
    assert render_text(split) == "a¦éb"
    assert [c.text for c in characters([b"\xff", b"x"])] == ["\\xff", "x"]


def test_html_contains_every_segment_and_png_is_written(model, tmp_path):
    segments = segment(model, ASCII)
    page = render_html(segments, title="tiny")
    assert page.count("<span ") == len(segments)
    for s in segments:
        assert html.escape(s.decode()) in page
    assert 's0' in page and 's1' in page
    out = tmp_path / "seg.png"
    render_png(segment(model, MIXED + "\n" + ASCII), out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size < 200_000


def test_cli_prints_marked_text_and_writes_views(model_dir, tmp_path, capsys):
    assert main(["segment", str(model_dir), "--text", ASCII.replace("\n", "\\n").replace("\t", "\\t"),
                 "--html", str(tmp_path / "s.html"), "--png", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].replace("|", "") == ASCII.splitlines()[0] and "|" in lines[0]
    assert "bytes per segment" in out and "(boundaries: sampled)" in out
    assert (tmp_path / "s.html").exists() and (tmp_path / "s.png").exists()
    (tmp_path / "t.txt").write_text(MIXED)
    assert main(["segment", str(model_dir), "--file", str(tmp_path / "t.txt"), "--boundaries", "threshold"]) == 0
    assert "(boundaries: threshold)" in capsys.readouterr().out
    assert main(["segment", str(model_dir)]) == 2
    assert "--text or --file" in capsys.readouterr().err
    assert main(["segment", str(tmp_path), "--text", "x"]) == 2


def test_cli_max_bytes_and_a_text_past_the_context_window(model_dir, tmp_path, capsys):
    """`--max-bytes N` segments the first N bytes (never cutting a character); a file longer than the
    model's 511-byte window is cut to it with a note instead of failing."""
    assert main(["segment", str(model_dir), "--text", "Grüße", "--max-bytes", "3"]) == 0
    out, err = capsys.readouterr()
    assert "-- 2 bytes" in out and "first 2 bytes" in err  # b"Gr\xc3" would cut the ü in two: b"Gr"
    long = tmp_path / "long.txt"
    long.write_text(ASCII * 20)
    assert main(["segment", str(model_dir), "--file", str(long)]) == 0
    out, err = capsys.readouterr()
    assert "-- 511 bytes" in out and "context window of 511" in err
