"""The layout's promises, checked on the source: the arrow goes bots -> core only, and no module imports
itself back through others (a cycle means two modules that are really one, or a seam in the wrong place).

Imports inside functions count too: a late import is a cycle hidden from Python, not one that went away.
Only `if TYPE_CHECKING:` imports are left out (they never run).
"""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "bots")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of core/ and bots/ that this file imports (`from core.x import y` counts as core.x.y when
    y is a module, else as core.x)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parts + ([child.module] if child.module else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)
            visit(child)

    visit(_parse(path))
    return {m for m in found if m in known and m != name}


def _parse(path: Path) -> ast.AST:
    """ast.parse, sheltered from CPython 3.11's "AST constructor recursion depth mismatch" (gh-106905: a counter
    in the interpreter-wide AST state that other threads' parsing can upset): a parse that hits it is done again
    in a separate interpreter, which has nothing else running."""
    source = path.read_text(encoding="utf-8")
    try:
        return ast.parse(source, filename=str(path))
    except SystemError:
        code = "import ast, pickle, sys; sys.stdout.buffer.write(pickle.dumps(ast.parse(sys.stdin.read(), sys.argv[1])))"
        out = subprocess.run([sys.executable, "-c", code, str(path)], input=source.encode(), capture_output=True,
                             check=True).stdout
        return pickle.loads(out)


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return _fresh_thread(lambda: {name: _imports(path, known) for name, path in known.items()})


def _fresh_thread(work):
    """Parse in a thread of its own: CPython 3.11's AST validator can fail with "AST constructor recursion depth
    mismatch" in a thread where an earlier test hit a RecursionError; a new thread starts with clean counters."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(work).result()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_sees_the_tree():
    graph = _graph()
    # Guards the checks below against a walker that finds nothing.
    assert "core.chat.service" in graph and "bots.app" in graph
    assert "core.config.schema" in graph["core.config.load"]
    assert "core.chat.service" in graph["bots.runtime"]


def test_core_imports_nothing_from_bots():
    leaks = sorted((module, imported) for module, imports in _graph().items() if module.startswith("core")
                   for imported in imports if imported.split(".")[0] == "bots")
    assert leaks == [], "core must not know the platforms: " + ", ".join(f"{m} -> {i}" for m, i in leaks)


def test_no_import_cycles_in_core_and_bots():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []



def _imports_of_tests(root: Path) -> list[str]:
    """Every `import tests…` / `from tests… import` in the .py files under root, function-level ones included."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(_parse(path)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(root.parent)}:{node.lineno} imports {n}" for n in names
                      if n == "tests" or n.startswith("tests.")]
    return found


def test_the_package_and_the_bench_never_import_tests():
    # tests/ is not installed: what the bench needs (the stand-in servers) lives in bots/standins.
    leaks = _fresh_thread(lambda: [leak for top in (*PACKAGES, "bench") for leak in _imports_of_tests(REPO / top)])
    assert leaks == [], "\n".join(leaks)


def test_the_tests_import_check_sees_an_import(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "x.py").write_text("import tests\ndef f():\n    from tests.fakes.trap import Trap\n")
    assert _fresh_thread(lambda: _imports_of_tests(tmp_path / "bench")) == [
        "bench/x.py:1 imports tests", "bench/x.py:3 imports tests.fakes.trap"]


def test_only_the_tests_and_the_bench_use_the_standins():
    users = sorted((module, imported) for module, imports in _graph().items()
                   if not module.startswith("bots.standins")
                   for imported in imports if imported.startswith("bots.standins"))
    assert users == [], "stand-ins are for tests and bench only: " + ", ".join(f"{m} -> {i}" for m, i in users)


def test_every_module_is_in_the_architecture_docs_module_index():
    """docs/architecture.md's module index names every module of the package with its one job, so a new module
    comes with its line there (the tree and the docs stay one picture)."""
    index = (REPO / "docs" / "architecture.md").read_text().split("## Module index", 1)
    assert len(index) == 2, "docs/architecture.md has no '## Module index' section"
    missing = [str(p.relative_to(REPO)) for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))
               if p.name != "__init__.py" and "specs" not in p.parts
               and f"`{p.relative_to(REPO)}`" not in index[1]]
    assert missing == [], f"add these to docs/architecture.md's module index: {missing}"
