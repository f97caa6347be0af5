"""Size limits of the package (issue #17): modules <= 400 lines, classes <= 150, functions <= 60."""

import ast
import os
from typing import List

PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pwcflow")
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 400, 150, 60


def _modules() -> List[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(PKG) for f in files if f.endswith(".py"))


def oversized(path: str) -> List[str]:
    """Every limit ``path`` breaks, as 'file:line name (n lines > limit)'."""
    with open(path) as fh:
        source = fh.read()
    rel = os.path.relpath(path, os.path.dirname(PKG))
    out = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE:
        out.append("%s (%d lines > %d)" % (rel, lines, MAX_MODULE))
    for node in ast.walk(ast.parse(source)):
        limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION \
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
        if limit is None:
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        n = node.end_lineno - first + 1 if hasattr(node, "end_lineno") else _span(node, first)
        if n > limit:
            out.append("%s:%d %s (%d lines > %d)" % (rel, node.lineno, node.name, n, limit))
    return out


def _span(node: ast.AST, first: int) -> int:
    """Line count without ``end_lineno`` (Python 3.7): up to the last line any child node starts on."""
    return max(getattr(n, "lineno", first) for n in ast.walk(node)) - first + 1


def test_package_respects_size_limits():
    assert _modules(), PKG
    problems = [p for path in _modules() for p in oversized(path)]
    assert not problems, "\n".join(problems)


def test_checker_catches_an_oversized_function(tmp_path):
    body = "\n".join("    x%d = %d" % (i, i) for i in range(MAX_FUNCTION + 5))
    path = tmp_path / "big.py"
    path.write_text("def big():\n%s\n    return 0\n" % body)
    assert any("big" in p for p in oversized(str(path)))
