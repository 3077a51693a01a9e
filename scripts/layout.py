"""The package's layout in numbers: modules and their lines, the longest functions, the import
graph's circles and upward imports. Run from the repository root:

    python scripts/layout.py            # table of modules, longest functions, circles
    python scripts/layout.py --check    # exit 1 if a module is over 400 lines, a function over
                                        # 80, the import graph has a circle, or a module imports a
                                        # higher layer (core -> rest of the package -> cli)

Reads the source with ``ast`` only (nothing is imported or run). Imports inside functions count
as edges too: a circle hidden in a function body is still a circle.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "glyphfuse"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / PACKAGE).rglob("*.py"))}


def imports_of(tree: ast.AST, name: str, modules: dict[str, Path]) -> set[str]:
    """Package modules that ``name`` imports (``from a import b`` counts a.b when it is a module)."""
    found = set()
    package = name if modules.get(name, Path()).name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(PACKAGE):
                found.add(target)
    return found


def functions_of(tree: ast.AST) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child.end_lineno - child.lineno + 1))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def survey(root: Path) -> dict:
    modules = read_modules(root)
    graph, lines, functions = {}, {}, []
    for name, path in modules.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        graph[name] = imports_of(tree, name, modules)
        lines[name] = len(text.splitlines())
        functions += [(f"{name}:{function}", count) for function, count in functions_of(tree)]
    functions.sort(key=lambda item: -item[1])
    return {"graph": graph, "lines": lines, "functions": functions, "circles": circles(graph), "upward": upward_imports(graph)}


def layer(name: str) -> int:
    """0 = the model and its math (glyphfuse.core; and the package's face, which holds only its
    version), 2 = the command line, 1 = everything between."""
    if name == PACKAGE or name.startswith(f"{PACKAGE}.core"):
        return 0
    if name.startswith(f"{PACKAGE}.cli") or name == f"{PACKAGE}.__main__":
        return 2
    return 1


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a higher layer: core importing the rest of the package, anything importing the CLI."""
    return sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                  if layer(target) > layer(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--top", type=int, default=12, help="longest functions to list")
    parser.add_argument("--check", action="store_true", help="exit 1 when a limit is broken")
    args = parser.parse_args()
    facts = survey(args.root)
    print(f"{'module':40s} {'lines':>6s}")
    for name, count in sorted(facts["lines"].items(), key=lambda item: -item[1]):
        print(f"{name:40s} {count:6d}")
    print(f"\n{len(facts['lines'])} modules, {sum(facts['lines'].values())} lines")
    print(f"\nlongest functions (of {len(facts['functions'])}):")
    for name, count in facts["functions"][: args.top]:
        print(f"  {count:4d}  {name}")
    print("\nimport circles: " + ("none" if not facts["circles"] else "; ".join(" <-> ".join(c) for c in facts["circles"])))
    print("imports of a higher layer: " + ("none" if not facts["upward"] else "; ".join(facts["upward"])))
    broken = [f"{name}: {count} lines > {MAX_MODULE_LINES}" for name, count in facts["lines"].items() if count > MAX_MODULE_LINES]
    broken += [f"{name}: {count} lines > {MAX_FUNCTION_LINES}" for name, count in facts["functions"] if count > MAX_FUNCTION_LINES]
    broken += ["import circle: " + " <-> ".join(c) for c in facts["circles"]]
    broken += ["import of a higher layer: " + edge for edge in facts["upward"]]
    if args.check and broken:
        print("\nlimits broken:\n  " + "\n  ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
