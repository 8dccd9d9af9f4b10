"""Text for the CLI: the shared corpora, built-in fallbacks, and reading text files as bytes with clear errors.

The logic lives in `tokenshift.bytelevel.corpus` (lower layers need it too);
this module re-exports it for the CLI and older importers.
"""
from __future__ import annotations

from pathlib import Path

from tokenshift.bytelevel.corpus import (  # noqa: F401  (re-exported)
    BUILTIN_TEXTS,
    LANGUAGES,
    builtin_text,
    default_eval_texts,
    read_text_bytes,
    resolve_text,
    shared_data_dir,
)


def default_texts(split: str = "valid") -> list[Path]:
    """The shared corpus files for every language (validation split by default)."""
    folder = shared_data_dir()
    if folder is None:
        raise FileNotFoundError(
            "no text given and ../shared/data was not found; pass --text FILE or set TOKENSHIFT_DATA"
        )
    suffix = ".valid.txt" if split == "valid" else ".txt"
    return [folder / f"{lang}{suffix}" for lang in LANGUAGES]


def text_name(path: str | Path) -> str:
    """`en` for `.../en.valid.txt`, `builtin:en` for a built-in text, else the file stem."""
    if str(path).startswith("builtin:"):
        return str(path)
    return Path(path).name.split(".")[0]
