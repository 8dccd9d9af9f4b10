"""Where evaluation text comes from: the shared corpora when present, else text every installation has.

The project's own machines carry corpora in `../shared/data` (English, Python
code and five other languages); a user's machine does not, and they are never
copied into the repository. So every command that needs text can fall back on
two built-in texts, named `builtin:en` and `builtin:code`:

- `en`: English prose written by this project (`docs/*.md` listed in
  `EN_DOCS`, shipped as package data, so a wheel install has it too);
- `code`: Python source from the running interpreter's standard library
  (`sysconfig.get_paths()["stdlib"]`), a fixed sorted selection of modules,
  the first `CODE_BYTES` bytes.

Both are valid UTF-8 and the same bytes on every call on one installation; a
different Python version may give different `code` bytes, so figures measured
on `builtin:code` are comparable within one installation, not across them.
This module covers English and code only: the other languages need the corpus.
`TOKENSHIFT_DATA=none` makes a machine that has the corpus behave as one
without it (to check the fallback, or to run anything on the built-ins only).
"""
from __future__ import annotations

import os
import sysconfig
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("en", "code", "de", "fr", "es", "ru", "ja")
BUILTIN_TEXTS = ("en", "code")
BUILTIN_PREFIX = "builtin:"
# docs/ sits beside bytelevel/ in the repository and installs as tokenshift/docs beside tokenshift/bytelevel
DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"
EN_DOCS = ("overview.md",)
# standard-library modules present in every CPython >= 3.10, read in this (sorted) order
CODE_MODULES = ("bisect.py", "colorsys.py", "graphlib.py", "heapq.py", "json/decoder.py", "json/encoder.py",
                "shlex.py", "string.py", "textwrap.py", "tokenize.py")
CODE_BYTES = 65536
NO_CORPUS = "none"  # TOKENSHIFT_DATA=none: ignore any corpus, use the built-in texts
BUILTIN_VALID_SHARE = 0.2  # the tail of a built-in text held out as its "valid" split


def shared_data_dir() -> Path | None:
    """`$TOKENSHIFT_DATA`, else `../shared/data` beside the repository or the working directory.

    None when no candidate holds `en.valid.txt`, or when TOKENSHIFT_DATA is `none`.
    """
    candidates = []
    if os.environ.get("TOKENSHIFT_DATA") == NO_CORPUS:
        return None
    if os.environ.get("TOKENSHIFT_DATA"):
        candidates.append(Path(os.environ["TOKENSHIFT_DATA"]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    return next((c for c in candidates if (c / "en.valid.txt").exists()), None)


def read_text_bytes(path: str | Path) -> bytes:
    """File contents as bytes; must be non-empty UTF-8 (the audit compares *text*)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"text file {str(path)!r} is a folder; pass the text files in it")
    if not path.is_file():
        raise FileNotFoundError(f"text file {str(path)!r} does not exist")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"text file {str(path)!r} is empty")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"text file {str(path)!r} is not UTF-8 (byte {err.start}: {err.reason})") from None
    return data


def _cut_utf8(data: bytes, limit: int) -> bytes:
    """The first `limit` bytes, shortened so no character is cut: b"a\\xc3\\xa9"[:2] -> b"a"."""
    return data[:limit].decode("utf-8", errors="ignore").encode("utf-8")


def _stdlib_code() -> bytes:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for name in CODE_MODULES:
        try:
            data = (stdlib / name).read_bytes()
            data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # a trimmed or zipped standard library: use what is there
        parts.append(data)
    if not parts:  # no readable stdlib source at all: fall back on this package's own source
        parts = [p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py"))]
    return _cut_utf8(b"\n\n".join(parts), CODE_BYTES)


def _project_prose() -> bytes:
    missing = [name for name in EN_DOCS if not (DOCS_DIR / name).is_file()]
    if missing:
        raise FileNotFoundError(f"builtin:en needs {DOCS_DIR / missing[0]}, which this installation lacks; "
                                "reinstall tokenshift (the file ships as package data)")
    return b"\n\n".join((DOCS_DIR / name).read_bytes() for name in EN_DOCS)


@lru_cache(maxsize=None)
def builtin_text(name: str) -> bytes:
    """The bytes of built-in text `name` ("en" or "code"): non-empty UTF-8, the same on every call."""
    if name not in BUILTIN_TEXTS:
        raise ValueError(f"unknown built-in text {name!r}; choose from {', '.join(BUILTIN_TEXTS)}")
    data = _project_prose() if name == "en" else _stdlib_code()
    data.decode("utf-8")  # both sources are checked UTF-8; this guards the invariant
    return data


def resolve_text(spec: str | Path) -> tuple[str, bytes]:
    """(display name, bytes) for `"builtin:en"`/`"builtin:code"` or a text file path.

    A file gets `read_text_bytes`'s checks (exists, not a folder, non-empty,
    UTF-8); an unknown `builtin:` name raises ValueError listing the allowed ones.
    """
    text = str(spec)
    if text.startswith(BUILTIN_PREFIX):  # a Path from argparse counts too: no real file has this name
        name = text[len(BUILTIN_PREFIX):]
        if name not in BUILTIN_TEXTS:
            allowed = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_TEXTS)
            raise ValueError(f"unknown built-in text {text!r}; choose from {allowed} or give a text file")
        return text, builtin_text(name)
    return text, read_text_bytes(spec)


def default_eval_texts(split: str = "valid") -> tuple[list[str], str]:
    """The shared corpus's en and code files when present, else the built-in texts; and a line saying which."""
    if split not in ("valid", "train"):
        raise ValueError(f"split must be 'valid' or 'train', got {split!r}")
    folder = shared_data_dir()
    suffix = ".valid.txt" if split == "valid" else ".txt"
    if folder is not None and all((folder / f"{lang}{suffix}").is_file() for lang in ("en", "code")):
        files = [str(folder / f"{lang}{suffix}") for lang in ("en", "code")]
        return files, f"evaluation text: the shared corpus in {folder} (en{suffix}, code{suffix})"
    names = [BUILTIN_PREFIX + n for n in BUILTIN_TEXTS]
    return names, ("evaluation text: builtin:en (this project's English docs) and builtin:code (Python's "
                   "standard library), because ../shared/data was not found (set TOKENSHIFT_DATA to use a corpus)")


def corpus_languages(wanted: tuple[str, ...] | list[str]) -> list[str]:
    """The languages of `wanted` this machine has text for: all with the corpus, else those with a built-in text."""
    unknown = [lang for lang in wanted if lang not in LANGUAGES]
    if unknown:
        raise ValueError(f"unknown language {unknown[0]!r}; choose from {', '.join(LANGUAGES)}")
    if shared_data_dir() is not None:
        return list(wanted)
    return [lang for lang in wanted if lang in BUILTIN_TEXTS]


def corpus_text(lang: str, split: str = "valid") -> bytes:
    """A language's text: the corpus's `<lang>.valid.txt` / `<lang>.txt`, else a built-in text's split.

    Without the corpus the built-in text is cut at the line break nearest
    `1 - BUILTIN_VALID_SHARE` of its length: "train" is the head, "valid" the
    tail, so a notebook that trains and then evaluates never scores its training text.
    """
    if split not in ("valid", "train"):
        raise ValueError(f"split must be 'valid' or 'train', got {split!r}")
    folder = shared_data_dir()
    if folder is not None:
        return read_text_bytes(folder / f"{lang}{'.valid.txt' if split == 'valid' else '.txt'}")
    if lang not in BUILTIN_TEXTS:
        raise FileNotFoundError(f"no text for {lang!r}: ../shared/data was not found and only "
                                f"{', '.join(BUILTIN_TEXTS)} have built-in texts (set TOKENSHIFT_DATA to a corpus folder)")
    data = builtin_text(lang)
    cut = data.rfind(b"\n", 0, int(len(data) * (1 - BUILTIN_VALID_SHARE))) + 1 or len(data) // 2
    return data[:cut] if split == "train" else data[cut:]


def corpus_source() -> str:
    """One line saying where `corpus_text` reads from."""
    folder = shared_data_dir()
    if folder is not None:
        beside = Path(__file__).resolve().parents[2] / "shared" / "data"
        return f"text: the corpus in {'../shared/data' if folder.resolve() == beside.resolve() else folder}"
    return ("text: builtin:en and builtin:code only (../shared/data not found, or TOKENSHIFT_DATA=none; "
            "set TOKENSHIFT_DATA to a corpus folder for the other languages)")
