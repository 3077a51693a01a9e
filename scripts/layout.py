"""The package's layout in numbers: modules and their lines, the longest functions, the import
graph's circles and upward imports. Run from the repository root:

    python scripts/layout.py            # table of modules, longest functions, circles
    python scripts/layout.py --check    # exit 1 if a module is over 400 lines, a function over
                                        # 80, the import graph has a circle (between modules or
                                        # between folders), or a module imports a higher layer

The layers, lowest first (:data:`LAYERS`): a module may import its own folder and the folders
below it, never one above:

    core -> data -> ocr -> sampling -> training -> evaluate, editing -> serve -> cli -> __main__

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
    folders = folder_graph(graph)
    return {"graph": graph, "lines": lines, "functions": functions, "circles": circles(graph), "upward": upward_imports(graph),
            "folders": folders, "folder_circles": circles(folders)}


# The pipeline's stages, lowest first: the folder (or top-level module) of each layer. The package's
# face (glyphfuse/__init__.py, which holds only its version) counts as core.
LAYERS = (
    ("core",),  # the model, its math, files, devices, progress
    ("data",),  # synthetic rendering, image folders, fonts, prompt sets
    ("ocr",),  # reading images back, scores, ranking
    ("sampling",),  # generate, settings, SR sampling, the rejection pipeline
    ("training",),  # the loop, its config, run folder, batches, SR training, warm start
    ("evaluate", "editing"),  # applications of the stages: eval, edit a picture
    ("serve",),  # the web server (sampling and editing)
    ("cli",),  # the command line
    ("__main__",),  # python -m glyphfuse
)


def folder(name: str) -> str:
    """The stage folder (or top-level module) of a module: glyphfuse.data.render -> data."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "core"


def layer(name: str) -> int:
    """The index in LAYERS of a module's folder; a folder not in LAYERS is one above them all,
    so that a new folder is placed on purpose."""
    for index, names in enumerate(LAYERS):
        if folder(name) in names:
            return index
    return len(LAYERS)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a higher layer (e.g. data importing sampling, anything importing the CLI)."""
    return sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                  if layer(target) > layer(name))


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph between folders: data -> core when any data module imports a core module."""
    folders: dict[str, set[str]] = {}
    for name, targets in graph.items():
        folders.setdefault(folder(name), set()).update(folder(target) for target in targets if folder(target) != folder(name))
    return folders


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
    print("\nfolders, lowest layer first (what each imports):")
    for names in LAYERS:
        for name in names:
            if name in facts["folders"]:
                imported = sorted(facts["folders"][name], key=lambda target: layer(f"{PACKAGE}.{target}.x"))
                count = sum(1 for module in facts["lines"] if folder(module) == name)
                print(f"  {name:10s} {count:3d} module(s)  -> {', '.join(imported) or '-'}")
    print("\nimport circles: " + ("none" if not facts["circles"] else "; ".join(" <-> ".join(c) for c in facts["circles"])))
    print("folder circles: " + ("none" if not facts["folder_circles"] else "; ".join(" <-> ".join(c) for c in facts["folder_circles"])))
    print("imports of a higher layer: " + ("none" if not facts["upward"] else "; ".join(facts["upward"])))
    broken = [f"{name}: {count} lines > {MAX_MODULE_LINES}" for name, count in facts["lines"].items() if count > MAX_MODULE_LINES]
    broken += [f"{name}: {count} lines > {MAX_FUNCTION_LINES}" for name, count in facts["functions"] if count > MAX_FUNCTION_LINES]
    broken += ["import circle: " + " <-> ".join(c) for c in facts["circles"] + facts["folder_circles"]]
    broken += ["import of a higher layer: " + edge for edge in facts["upward"]]
    if args.check and broken:
        print("\nlimits broken:\n  " + "\n  ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
