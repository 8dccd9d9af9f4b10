"""Where the shared corpora live, and reading text files as bytes with clear errors."""
from __future__ import annotations

import os
from pathlib import Path

LANGUAGES = ("en", "code", "de", "fr", "es", "ru", "ja")


def shared_data_dir() -> Path | None:
    """`$TOKENSHIFT_DATA`, else `../shared/data` beside the repository or the working directory."""
    candidates = []
    if os.environ.get("TOKENSHIFT_DATA"):
        candidates.append(Path(os.environ["TOKENSHIFT_DATA"]))
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    return next((c for c in candidates if (c / "en.valid.txt").exists()), None)


def default_texts(split: str = "valid") -> list[Path]:
    """The shared corpus files for every language (validation split by default)."""
    folder = shared_data_dir()
    if folder is None:
        raise FileNotFoundError(
            "no text given and ../shared/data was not found; pass --text FILE or set TOKENSHIFT_DATA"
        )
    suffix = ".valid.txt" if split == "valid" else ".txt"
    return [folder / f"{lang}{suffix}" for lang in LANGUAGES]


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


def text_name(path: str | Path) -> str:
    """`en` for `.../en.valid.txt`, else the file stem."""
    return Path(path).name.split(".")[0]
