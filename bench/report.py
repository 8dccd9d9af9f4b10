"""Regenerate the README's results tables and CLI reference from their sources, so README numbers match the files.

    python bench/report.py            # rewrite README.md between its markers, redraw the cheap plots
    python bench/report.py --check    # exit 1 if README.md would change (CI, tests/test_report.py)

The README holds sections `<!-- results:NAME -->` ... `<!-- /results:NAME -->`;
each known NAME has a renderer (bench/report_tables.py) that turns `bench/results/NAME.json` (the
`tokenshift.results.write_result` format) into markdown: a setup line, tables,
target lines, and the command, date and machine of the run, all taken from
the record. A known section whose JSON is missing gets a "not run yet" line
with the command that makes it; sections with unknown names are left alone.
`<!-- cli -->` ... `<!-- /cli -->` gets the `tokenshift --help` tree. Text
outside the markers (method notes, interpretation) is never touched: keep
figures out of it, or they go stale unchecked.

Plots are redrawn from the JSON with the benchmark's own `plot` function where
that is cheap (dynamic, ann, hat, flexitokens); other plots are left to the benchmarks.
"""
from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import os
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- (results:[A-Za-z0-9_-]+|cli) -->\n(.*?)<!-- /\1 -->", re.DOTALL)
CLI_WIDTH = 100  # columns for argparse's usage wrapping: fixed so the output does not depend on the terminal


def _load(name: str):
    """A module of bench/ by file (bench is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tables = _load("report_tables")
RESULTS = tables.RESULTS
PLOTS = {  # name -> how to call its benchmark's own plot(): cheap, from the JSON alone
    "dynamic": lambda plot, r, png: plot(r["metrics"]["languages"], png),
    "ann": lambda plot, r, png: plot(r["metrics"], png),
    "hat": lambda plot, r, png: plot({k: v["history"] for k, v in r["metrics"]["models"].items()}, png),
    "flexitokens": lambda plot, r, png: plot(
        {k: v["history"] for k, v in r["metrics"]["models"].items()},
        {lang: p[0] for lang, p in r["metrics"]["models"]["hinge"]["priors"].items()},
        r["config"]["adapt_language"], r["metrics"]["models"]["binomial"]["adaptation"]["prior"][0],
        {k: {lang: v["bytes_per_segment"] for lang, v in x["valid"].items()} for k, x in r["metrics"]["models"].items()},
        r["metrics"]["baselines"], png),
}


def provenance(name: str, record: dict, command: str) -> str:
    """Where the figures come from: command, date and machine of the run."""
    mach = record.get("machine") or {}
    date = str(record.get("date", "?"))[:16].replace("T", " ")
    where = ", ".join(x for x in (str(mach.get("platform", "")).split("-")[0],
                                  f"{mach['cpus']} CPUs" if mach.get("cpus") else "",
                                  f"torch {mach['torch']}" if mach.get("torch") else "",
                                  mach.get("cuda") or "no GPU") if x)
    return f"<sub>`{command}` · {date} UTC · {where} · `bench/results/{name}.json`</sub>"


def render_section(name: str, results: Path, readme_dir: Path) -> str | None:
    """The markdown between a section's markers, or None for a name this report does not know."""
    if name not in RESULTS:
        return None
    render, command, alt = RESULTS[name]
    path = results / f"{name}.json"
    if not path.exists():
        return f"Not run yet: `{command(None)}`"
    record = json.loads(path.read_text())
    try:
        body = render(record)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, StopIteration) as err:
        raise SystemExit(f"bench/report.py: cannot render {path} ({type(err).__name__}: {err}): the record does not "
                         f"have the layout render_{name} reads; rerun the benchmark or update the renderer") from err
    png = path.with_suffix(".png")
    if alt and png.exists():
        body += f"\n\n![{alt}]({Path(os.path.relpath(png, readme_dir)).as_posix()})"
    # the command the record stores, else (a record written before records stored it) rebuilt from its config
    return body + "\n\n" + provenance(name, record, record.get("command") or command(record.get("config") or {}))


def render_cli() -> str:
    """`tokenshift --help` and each subcommand's usage, wrapped at a fixed width."""
    import argparse as ap

    from tokenshift.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(CLI_WIDTH)
    try:
        parser = build_parser()
        lines = ["$ tokenshift --help", parser.format_help().rstrip()]
        sub = next(a for a in parser._actions if isinstance(a, ap._SubParsersAction))
        lines += ["", "# each command's usage; `tokenshift COMMAND --help` explains its options"]
        for name, p in sub.choices.items():
            lines.append(p.format_usage().rstrip() if p.add_help else
                         f"usage: tokenshift {name} [LightningCLI options: --config FILE ...; --help lists them]")
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return "```text\n" + "\n".join(lines) + "\n```"


def update(text: str, results: Path, readme_dir: Path) -> str:
    """The README text with every known section regenerated (pure: same inputs, same output)."""

    def replace(match: re.Match) -> str:
        key = match.group(1)
        body = render_cli() if key == "cli" else render_section(key.split(":", 1)[1], results, readme_dir)
        if body is None:
            return match.group(0)
        return f"<!-- {key} -->\n{body}\n<!-- /{key} -->"

    return MARKER.sub(replace, text)


def redraw_plots(results: Path) -> list[Path]:
    """Redraw the plots that are cheap to make from the JSON, with each benchmark's own plot function."""
    done = []
    for name, call in PLOTS.items():
        path = results / f"{name}.json"
        if not path.exists():
            continue
        png = path.with_suffix(".png")
        try:
            call(_load(name).plot, json.loads(path.read_text()), png)
        except Exception as err:  # a plot is a convenience: the tables are written either way
            warnings.warn(f"could not redraw {png} from {path} ({type(err).__name__}: {err}); rerun "
                          f"bench/{name}.py to draw it")
            continue
        done.append(png)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README would change; write nothing")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-plots", action="store_true", help="do not redraw plots")
    args = parser.parse_args(argv)
    if not args.readme.is_file():
        parser.error(f"--readme {args.readme} is not a file")
    old = args.readme.read_text()
    new = update(old, args.results, args.readme.resolve().parent)
    if args.check:
        if new == old:
            return 0
        diff = difflib.unified_diff(old.splitlines(), new.splitlines(), str(args.readme), "regenerated", lineterm="")
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"{args.readme} is out of date with {args.results}: run `python bench/report.py`", file=sys.stderr)
        return 1
    if new != old:
        args.readme.write_text(new)
    plots = [] if args.no_plots else redraw_plots(args.results)
    print(f"{args.readme}: {'updated' if new != old else 'unchanged'}"
          + (f"; redrew {', '.join(p.name for p in plots)}" if plots else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
