"""The import contracts of docs/architecture.md, checked on the source: no import circles anywhere in
genbench (function-level imports included: a lazy import that hides a circle is still a circle), `metrics/`
imports nothing from the rest of genbench, and only the CLI imports the CLI."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"genbench": ROOT / "genbench", "genbench.metrics": ROOT / "metrics",
            "genbench.reference_stats": ROOT / "reference_stats"}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for file in folder.rglob("*.py"):
            parts = [p for p in file.relative_to(folder).with_suffix("").parts if p != "__init__"]
            modules[".".join([package, *parts])] = file
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the genbench modules it imports (at any depth of its code)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `from pkg import name` names a module or not
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_the_checker_finds_a_circle_and_a_lazy_import():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    # a function-level import counts: the CLI's verbs import their work lazily
    assert "genbench.sampling.from_model" in graph["genbench.cli.sample"]


def test_no_import_circles():
    assert import_circles(import_graph()) == []


def test_metrics_import_nothing_from_the_rest_of_genbench():
    graph = import_graph()
    for module, targets in graph.items():
        if module.startswith("genbench.metrics"):
            outside = sorted(t for t in targets if not t.startswith("genbench.metrics"))
            assert outside == [], f"{module} imports {outside}"


def test_only_the_cli_imports_the_cli():
    graph = import_graph()
    for module, targets in graph.items():
        if not module.startswith("genbench.cli") and module not in ("genbench.__main__",):
            assert not any(t == "genbench.cli" or t.startswith("genbench.cli.") for t in targets), module


def test_cli_verbs_call_the_library_not_each_other():
    """The CLI is a thin layer: a verb's module imports the app, the progress bar and library code, never
    another verb (eval --model samples through genbench.sampling.from_model, not the `sample` command)."""
    graph = import_graph()
    shared = {"genbench.cli", "genbench.cli.app", "genbench.cli.progress"}
    for module, targets in graph.items():
        if module.startswith("genbench.cli.") and module not in shared | {"genbench.cli.commands"}:
            verbs = sorted(t for t in targets if t.startswith("genbench.cli.") and t not in shared)
            assert verbs == [], f"{module} imports {verbs}"
