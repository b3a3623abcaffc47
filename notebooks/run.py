"""Execute the notebooks headless against a results folder: executed copies, HTML and PNG figures.

    python notebooks/run.py --results results/compare --out notebooks/_build     (what `make notebooks` runs)

Parameters are injected papermill-style: a cell is inserted after the cell tagged `parameters`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from mdp_prune.store import paths

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("q_convergence", "accuracy_curves", "grid_search")


def execute(name: str, results: Path, out: Path, timeout: int = 600) -> Path:
    nb = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    figures = out / paths.FIGURES / name
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(
        f"# Injected parameters\nRESULTS = {str(results)!r}\nFIGURES = {str(figures)!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    out.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out / f"{name}.ipynb")
    html, _ = HTMLExporter().from_notebook_node(nb)
    (out / f"{name}.html").write_text(html)
    return out / f"{name}.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results/compare"),
                        help="comparison folder written by `make compare-baseline` (default: results/compare)")
    parser.add_argument("--out", type=Path, default=HERE / "_build", help="output folder (default: notebooks/_build)")
    parser.add_argument("--only", choices=NOTEBOOKS, action="append", help="run only these notebooks")
    args = parser.parse_args(argv)
    results = args.results.resolve()
    if not (results / paths.COMPARISON_CSV).is_file():
        print(f"error: {results} is not a comparison folder (no {paths.COMPARISON_CSV}); run `make compare-baseline` "
              "first", file=sys.stderr)
        return 2
    for name in args.only or NOTEBOOKS:
        try:
            print(execute(name, results, args.out.resolve()))
        except CellExecutionError as e:
            print(f"error: notebook {name} failed: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
