"""The evaluation package sits below apps / viz and the top level (config, book, cli): none of its modules may
import them, and none may import a private name of another eval module (issue 14)."""

import ast
from pathlib import Path

import pytest

EVAL = Path(__file__).resolve().parents[1] / "diffusets_core" / "eval"
HIGHER = ("apps", "viz", "config", "book", "cli")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield 0, a.name, []


@pytest.mark.parametrize("path", sorted(EVAL.glob("*.py")), ids=lambda p: p.stem)
def test_eval_imports_point_down(path):
    for level, module, names in _imports(path):
        absolute = module if level == 0 else ("diffusets_core." if level == 2 else "diffusets_core.eval.") + module
        top = absolute.split(".")[1] if absolute.startswith("diffusets_core.") and "." in absolute else ""
        assert top not in HIGHER, f"{path.name} imports {absolute}"
        if level == 1:  # a sibling eval module: public names only
            assert not [n for n in names if n.startswith("_")], f"{path.name} imports private {names} from .{module}"
