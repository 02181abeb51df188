"""Chapters stay thin: a code cell is parameters, imports, calls into the package and displays.

As in d2l, what a chapter needs and the CLI also needs lives once in the package, so a chapter cell is a few
lines that call one function. This test reads every notebook's code cells with ``ast`` and counts, per
cell, the *logic lines*: lines inside compound statements (``if``/``for``/``while``/``try``/``with``/``def``/
``class``/``match``) and lines of simple statements that assemble text or data themselves (f-strings,
comprehensions, lambdas, conditional expressions, string concatenation with ``+``). Imports, plain assignments,
single calls (however many lines their arguments span) and displays are free. A cell tagged ``parameters`` is
exempt, and so is the ``setup`` cell that installs the package outside the repository. Run ``python tests/test_notebook_cells.py`` for the per-cell count.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_LOGIC_LINES = 3  # e.g. one `if` guarding a two-line display


def _builds_text(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(
            sub, (ast.JoinedStr, ast.ListComp, ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.Lambda, ast.IfExp)
        ):
            return True
        if (
            isinstance(sub, ast.BinOp)
            and isinstance(sub.op, ast.Add)
            and any(
                isinstance(s, (ast.Constant, ast.JoinedStr))
                and isinstance(getattr(s, "value", None), str)
                or isinstance(s, ast.JoinedStr)
                for s in (sub.left, sub.right)
            )
        ):
            return True
    return False


COMPOUND = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.Try,
    ast.With,
    ast.AsyncWith,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
) + ((ast.Match,) if hasattr(ast, "Match") else ())


def logic_lines(source: str) -> set[int]:
    """Line numbers (1-based) of ``source`` that count as logic (see module docstring)."""
    src = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    tree = ast.parse(src)
    lines: set[int] = set()
    for stmt in tree.body:
        span = set(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
        if isinstance(stmt, COMPOUND) or _builds_text(stmt):
            lines |= span
    blank = {i + 1 for i, line in enumerate(src.splitlines()) if not line.strip() or line.strip().startswith("#")}
    return lines - blank


def cell_report(nb_path: Path) -> list[tuple[int, int, str]]:
    """``(cell index, logic lines, first line)`` for every non-parameters code cell of a notebook."""
    nb = json.loads(nb_path.read_text())
    out = []
    for i, cell in enumerate(nb["cells"]):
        tags = cell.get("metadata", {}).get("tags", [])
        # the setup cell runs before the package exists, so it cannot call into it (diffusets_core.publish)
        if cell["cell_type"] != "code" or "parameters" in tags or "setup" in tags:
            continue
        src = "".join(cell["source"])
        out.append((i, len(logic_lines(src)), src.strip().splitlines()[0] if src.strip() else ""))
    return out


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_are_thin(nb_path):
    heavy = [(i, n, first) for i, n, first in cell_report(nb_path) if n > MAX_LOGIC_LINES]
    assert not heavy, (
        f"{nb_path.name}: cells with more than {MAX_LOGIC_LINES} logic lines (move the logic into "
        "the package): " + "; ".join(f"cell {i} ({n} lines, starts {first!r})" for i, n, first in heavy)
    )


def test_logic_line_counter():
    assert logic_lines("x = f(a, b,\n      c)\ndisplay(x)\nimport os") == set()
    assert logic_lines("if a:\n    display(b)\n") == {1, 2}
    assert logic_lines("msg = f'{a} b'\nrows = [r for r in x]\n") == {1, 2}
    assert logic_lines("s = 'a' + b\n") == {1}
    assert logic_lines("%matplotlib inline\nplt.show()") == set()


if __name__ == "__main__":
    for path in (Path(p) for p in (sys.argv[1:] or NOTEBOOKS)):
        for i, n, first in cell_report(path):
            flag = "  <-- too much logic" if n > MAX_LOGIC_LINES else ""
            print(f"{path.stem:24s} cell {i:2d}: {n:2d}  {first[:60]}{flag}")
