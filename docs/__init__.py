"""Package data: documents written by this project; `overview.md` is the English text `builtin:en` reads."""
