"""See where a FLEXITOKENS model puts its segment boundaries: `segment(model, text)` and three renderers.

`segment` runs the model once in eval mode (boundaries as `config.eval_boundaries` makes
them outside training, i.e. what scoring and generation use) and cuts the text's bytes
where a segment starts. Renderers show the cuts on characters: a boundary that falls inside
a multi-byte UTF-8 character is drawn before that character, as `¦` in text; HTML and PNG
give each character the colour of the segment its first byte belongs to.

    tokenshift segment runs/flexitokens-tiny/model --text "Hello, world" [--html out.html] [--png out.png]
"""
from __future__ import annotations

import html
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .base import BOS
from .flexitokens import FlexiTokensLM


def segment(model: FlexiTokensLM, text: str | bytes, eval_boundaries: str | None = None) -> list[bytes]:
    """The text's bytes cut where the model starts a segment; they concatenate back to the text.

    `eval_boundaries` ("sampled" or "threshold") overrides the model's own setting for this call.
    """
    if not isinstance(model, FlexiTokensLM):
        raise TypeError(f"segment needs a FLEXITOKENS model (learned boundaries), got {type(model).__name__}")
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if not data:
        return []
    if len(data) >= model.config.max_bytes:
        raise ValueError(f"the text has {len(data)} bytes; the model's context window is "
                         f"{model.config.max_bytes - 1}")
    config = model.config
    was_training = model.training
    try:
        if eval_boundaries is not None:
            model.config = replace(config, eval_boundaries=eval_boundaries)
        model.eval()
        with torch.no_grad():
            b = model.run(torch.tensor([[BOS, *data]], device=model.device)).boundaries[0, 1:]
    finally:
        model.config = config
        model.train(was_training)
    starts = [0, *[i for i in (b > 0.5).nonzero()[:, 0].tolist() if i > 0], len(data)]
    return [data[a:z] for a, z in zip(starts, starts[1:])]


@dataclass
class Char:
    """One displayed character: its text, the segment of its first byte, and whether a segment starts in it."""

    text: str
    segment: int
    start: bool  # a segment starts at its first byte
    inside: bool  # a segment starts at one of its other bytes (a boundary inside a UTF-8 character)


def _utf8_len(lead: int) -> int:
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def characters(segments: list[bytes]) -> list[Char]:
    """The segments' bytes as characters (invalid UTF-8 bytes shown as \\xNN), each tagged with its segment."""
    data = b"".join(segments)
    seg_of, starts, pos = [], set(), 0
    for i, s in enumerate(segments):
        starts.add(pos)
        seg_of += [i] * len(s)
        pos += len(s)
    out, i = [], 0
    while i < len(data):
        n = _utf8_len(data[i])
        try:
            ch = data[i : i + n].decode("utf-8") if i + n <= len(data) else None
        except UnicodeDecodeError:
            ch = None
        if ch is None:
            ch, n = f"\\x{data[i]:02x}", 1
        out.append(Char(ch, seg_of[i], i in starts and i > 0, any(j in starts for j in range(i + 1, i + n))))
        i += n
    return out


def bytes_per_segment(segments: list[bytes]) -> float:
    """Compression: bytes per segment (1 / boundary rate)."""
    return sum(map(len, segments)) / max(len(segments), 1)


def render_text(segments: list[bytes], mark: str = "|") -> str:
    """The text with `mark` before each segment start (`¦` where the start falls inside a character)."""
    out = []
    for c in characters(segments):
        out.append((mark if c.start else "¦" if c.inside else "") + c.text)
    return "".join(out)


def render_html(segments: list[bytes], title: str = "") -> str:
    """A standalone HTML page: each segment a span with alternating background, its bytes in the tooltip."""
    chars = characters(segments)
    spans, cur, seg = [], [], None
    for c in chars + [Char("", -1, True, False)]:
        if c.segment != seg and cur:
            raw = segments[seg]
            spans.append(f'<span class="s{seg % 2}" title="{len(raw)} bytes">{html.escape("".join(cur))}</span>')
            cur = []
        seg = c.segment
        cur.append(c.text)
    head = (f"<h3>{html.escape(title)}</h3>" if title else "") + (
        f"<p>{len(segments)} segments, {bytes_per_segment(segments):.2f} bytes per segment</p>")
    style = ("pre{white-space:pre-wrap;font-family:monospace;line-height:1.6}"
             ".s0{background:#cde4ff}.s1{background:#ffe0b3}span{border-left:1px solid #555}")
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>{style}</style></head>\n'
            f"<body>{head}<pre>{''.join(spans)}</pre></body></html>\n")


def render_png(segments: list[bytes], path: str | Path, width: int = 80, title: str = "") -> None:
    """A small PNG: characters in a monospace grid, each on its segment's (alternating) colour,
    a dark bar at each segment start. Lines wrap at `width` characters and at newlines."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    cells, row, col = [], 0, 0
    for c in characters(segments):
        if c.text == "\n":
            cells.append((row, col, "⏎", c))
            row, col = row + 1, 0
            continue
        if col >= width:
            row, col = row + 1, 0
        cells.append((row, col, "→" if c.text == "\t" else c.text, c))
        col += 1
    rows = row + 1
    fig = plt.figure(figsize=(max(2.0, 0.11 * min(width, max((x[1] for x in cells), default=0) + 1)), 0.25 * rows + 0.6))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.4 / (0.25 * rows + 0.6)))
    colours = ("#cde4ff", "#ffe0b3")
    for r, x, text, c in cells:
        ax.add_patch(Rectangle((x, -r - 1), 1, 1, color=colours[c.segment % 2], linewidth=0))
        if c.start or c.inside:
            ax.plot([x, x], [-r - 1, -r], color="#333" if c.start else "#999", linewidth=1.2)
        ax.text(x + 0.5, -r - 0.5, text, ha="center", va="center", fontsize=7, family="monospace")
    ax.set_xlim(0, max(width if rows > 1 else col, 1))
    ax.set_ylim(-rows, 0)
    ax.axis("off")
    fig.suptitle(title or f"{len(segments)} segments, {bytes_per_segment(segments):.2f} bytes per segment",
                 fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs the default font lacks (CJK) are drawn as boxes
        fig.savefig(path, dpi=110)
    plt.close(fig)
