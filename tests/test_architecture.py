"""The package's shape: size limits (modules <= 400 lines, classes <= 150, functions <= 60), no import loop, and no
import from a lower layer into a higher one (the layers are written once, in docs/architecture.md)."""

import ast
import os
import re
from typing import Dict, List, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "pwcflow")
DOC = os.path.join(ROOT, "docs", "architecture.md")
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 400, 150, 60


def _modules(pkg: str = PKG) -> List[str]:
    return sorted(os.path.join(d, f) for d, _, files in os.walk(pkg) for f in files if f.endswith(".py"))


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


def module_name(path: str, pkg: str = PKG) -> str:
    rel = os.path.relpath(path, os.path.dirname(pkg))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def import_graph(pkg: str = PKG) -> Dict[str, Set[str]]:
    """Module -> the pwcflow modules it imports anywhere in its body (``from pwcflow.a import b`` names the module
    ``pwcflow.a.b`` where that is a module, else ``pwcflow.a``)."""
    paths = _modules(pkg)
    names = {module_name(p, pkg) for p in paths}
    graph = {}
    for path in paths:
        with open(path) as fh:
            tree = ast.parse(fh.read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.split(".")[0] == "pwcflow")
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("pwcflow"):
                for alias in node.names:
                    sub = "%s.%s" % (node.module, alias.name)
                    deps.add(sub if sub in names else node.module)
        graph[module_name(path, pkg)] = {d for d in deps if d in names} - {module_name(path, pkg)}
    return graph


def loops(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layers(doc: str = DOC) -> List[Tuple[str, List[str]]]:
    """The ordered layers of docs/architecture.md: (name, [entries]) where an entry is ``folder/`` or ``file.py``."""
    with open(doc) as fh:
        text = fh.read()
    block = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    out = []
    for line in block.strip().splitlines():
        m = re.match(r"^\d+\.\s+([^:]+):\s*(.*)$", line.strip())
        if m:
            out.append((m.group(1).strip(), re.findall(r"`([^`]+)`", m.group(2))))
    return out


def layer_of(module: str, order: List[Tuple[str, List[str]]]) -> int:
    """The index of ``module``'s layer, or -1 where no entry lists it."""
    parts = module.split(".")[1:]
    for i, (_, entries) in enumerate(order):
        for entry in entries:
            if entry.endswith("/") and parts and parts[0] == entry[:-1]:
                return i
            if entry.endswith(".py") and (parts or ["__init__"]) == [entry[:-3]]:
                return i
    return -1


def layering_problems(graph: Dict[str, Set[str]], order: List[Tuple[str, List[str]]]) -> List[str]:
    """Unlisted modules and imports from a lower layer into a higher one, one line each."""
    out = []
    for mod in sorted(graph):
        here = layer_of(mod, order)
        if here < 0:
            out.append("%s is in no layer of docs/architecture.md" % mod)
            continue
        for dep in sorted(graph[mod]):
            there = layer_of(dep, order)
            if there > here:
                out.append("%s (layer %s) imports %s (higher layer %s)" % (mod, order[here][0], dep, order[there][0]))
    return out


def test_package_respects_size_limits():
    assert _modules(), PKG
    problems = [p for path in _modules() for p in oversized(path)]
    assert not problems, "\n".join(problems)


def test_checker_catches_an_oversized_function(tmp_path):
    body = "\n".join("    x%d = %d" % (i, i) for i in range(MAX_FUNCTION + 5))
    path = tmp_path / "big.py"
    path.write_text("def big():\n%s\n    return 0\n" % body)
    assert any("big" in p for p in oversized(str(path)))


def test_no_import_loop():
    found = loops(import_graph())
    assert not found, "\n".join(" <-> ".join(group) for group in found)


def test_imports_only_go_down_the_layers():
    order = layers()
    assert len(order) >= 10, order
    problems = layering_problems(import_graph(), order)
    assert not problems, "\n".join(problems)


def test_package_init_files_are_empty():
    """A package ``__init__`` that imports would drag TensorFlow into TF-free commands (predict from .onnx)."""
    inits = [p for p in _modules() if p.endswith("__init__.py") and os.path.dirname(p) != PKG]
    assert inits
    assert [p for p in inits if os.path.getsize(p) and "import" in open(p).read()] in ([], [os.path.join(
        PKG, "reference", "__init__.py")])


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checkers_catch_a_loop_and_an_upward_import(tmp_path):
    _write(tmp_path, {"pwcflow/__init__.py": "", "pwcflow/errors.py": "", "pwcflow/files/__init__.py": "",
                      "pwcflow/files/a.py": "from pwcflow.model import b\n", "pwcflow/model/__init__.py": "",
                      "pwcflow/model/b.py": "def f():\n    from pwcflow.files import a\n",
                      "doc.md": "<!-- layers -->\n1. foundation: `__init__.py` `errors.py`\n2. files: `files/`\n"
                                "3. model: `model/`\n<!-- /layers -->\n"})
    graph = import_graph(str(tmp_path / "pwcflow"))
    assert loops(graph) == [["pwcflow.files.a", "pwcflow.model.b"]]
    assert layering_problems(graph, layers(str(tmp_path / "doc.md"))) == [
        "pwcflow.files.a (layer files) imports pwcflow.model.b (higher layer model)"]
