"""`tokenshift transplant --out`: written whole or not at all, and `--force` replaces only our own output.

The model is written into a staging folder beside `--out` (with a marker file
saying this tool wrote it) and renamed over it at the end; an old output is
moved aside first and removed last, so a kill at any moment leaves either the
old output or the new one, never a mix, and never touches a user's own files.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from tokenshift.errors import UserError


def _writable_parent(option: str, path: Path) -> Path:
    """The nearest existing ancestor of `path`, which must be a folder this process can write in."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{option}: {str(path)!r} cannot be made: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option}: {str(path)!r} cannot be made: no permission to write in {str(parent)!r}")
    return parent


STAGING = re.compile(r"\.transplant-(\d+)-([0-9a-f]{8})(\.old)?")  # .transplant-<pid>-<hex>[.old]
MARKER = ".tokenshift-output"  # in every output (and staging) folder: {"written_by", "pid", "out"}


def _is_previous_output(folder: Path) -> bool:
    """A folder this tool wrote: its marker, or the `transplant_report.json` of an older version."""
    return (folder / MARKER).is_file() or (folder / "transplant_report.json").is_file()


def _check_out(out: Path, force: bool) -> Path:
    """The absolute `--out`, refused before any work when writing there could lose something.

    Never replaced: `/`, the home folder, the current folder or one that contains it, a file, a
    symbolic link, and a non-empty folder that is not a previous output of this tool. A previous
    output is replaced only with `--force`. The nearest existing parent must be a writable folder.
    """
    path = out.expanduser()
    target = path.absolute()
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    reasons = [(resolved == Path(resolved.anchor), "the root folder"), (resolved == Path.home().resolve(),
               "your home folder"), (resolved == cwd, "the current folder"),
               (resolved in cwd.parents, "a folder that contains the current folder")]
    for hit, what in reasons:
        if hit:
            raise UserError(f"--out {str(out)!r} is {what}; give a new folder for the model, e.g. --out converted")
    if path.is_symlink():
        raise UserError(f"--out {str(out)!r} is a symbolic link; give the folder itself")
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {str(out)!r} is a file; give a folder")
    if path.is_dir() and any(path.iterdir()):
        if not _is_previous_output(path):
            raise UserError(f"--out {str(out)!r} holds files that are not a tokenshift transplant output (no "
                            f"{MARKER} or transplant_report.json), so --force will not replace it; give a new folder")
        if not force:
            raise UserError(f"--out {str(out)!r} holds a previous transplant; pass --force to replace it")
    _writable_parent("--out", target)
    return target


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _clean_stale(parent: Path) -> list[str]:
    """Remove the staging folders a killed transplant left in `parent` (ours: the name, the marker, a
    dead pid). A kill between moving the old output aside and moving the new one in leaves the old
    copy as `<staging>.old`: it is moved back first. Returns what was done, one line each."""
    done = []
    if not parent.is_dir():
        return done
    entries = sorted((e for e in parent.iterdir() if STAGING.fullmatch(e.name) and e.is_dir()),
                     key=lambda e: e.name.endswith(".old"))  # staging folders first, then old copies
    for entry in entries:
        match = STAGING.fullmatch(entry.name)
        if _pid_alive(int(match.group(1))):
            continue
        if match.group(3) is None:  # an unfinished new output
            try:
                info = json.loads((entry / MARKER).read_text())
            except (OSError, ValueError):
                continue  # not ours (no marker): leave it
            old = entry.with_name(entry.name + ".old")
            out = parent / str(info.get("out", ""))
            if old.is_dir() and info.get("out") and not out.exists():
                os.rename(old, out)
                done.append(f"restored {out} (a killed run had moved it aside)")
            _rmtree(entry)
            done.append(f"removed {entry} (left by a killed run)")
        elif _is_previous_output(entry) and not entry.with_name(entry.name[: -len(".old")]).exists():
            _rmtree(entry)  # the new output was moved in; this copy of the old one was due for removal
            done.append(f"removed {entry} (an old output a killed run had replaced)")
    return done


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class StagedOutput:
    """A hidden folder beside `out` that becomes `out` in one rename once everything is written.

    Made with the user's umask (not `mkdtemp`'s 0700); parents that had to be made are removed
    again if nothing was written. `commit` moves an existing `out` aside, renames the staging
    folder over it and only then removes the old copy; leaving the block without `commit`
    removes the staging folder.
    """

    def __init__(self, out: Path):
        self.out = out
        self.path: Path | None = None  # the staging folder, once made
        self.committed = False
        self._made: list[Path] = []

    def __enter__(self) -> "StagedOutput":
        import secrets

        parent = self.out.parent
        for line in _clean_stale(parent):
            print(line, file=sys.stderr)
        try:
            missing = [p for p in [parent, *parent.parents] if not p.exists()]
            for folder in reversed(missing):
                folder.mkdir()
                self._made.append(folder)
            while self.path is None:
                path = parent / f".transplant-{os.getpid()}-{secrets.token_hex(4)}"
                try:
                    path.mkdir()
                    self.path = path
                except FileExistsError:
                    continue
            info = {"written_by": "tokenshift transplant", "pid": os.getpid(), "out": self.out.name}
            (self.path / MARKER).write_text(json.dumps(info) + "\n")
        except OSError as err:
            self.__exit__()
            raise UserError(f"--out {str(self.out)!r} cannot be written: {err.strerror or err}") from None
        return self

    def commit(self) -> None:
        assert self.path is not None, "commit() inside the with block"
        old = self.path.with_name(self.path.name + ".old")
        if self.out.exists():
            os.rename(self.out, old)
        os.rename(self.path, self.out)
        self.committed = True
        if old.exists():
            _rmtree(old)

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            if self.path is not None and STAGING.fullmatch(self.path.name):  # never anything but our staging
                _rmtree(self.path)
            for folder in reversed(self._made):
                try:
                    folder.rmdir()
                except OSError:
                    break
