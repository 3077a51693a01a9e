"""The package's shape stays readable: the limits of scripts/layout.py hold on the real tree, and
the checker itself finds what it is meant to find."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("layout", REPO / "scripts" / "layout.py")
layout = importlib.util.module_from_spec(spec)
sys.modules["layout"] = layout
spec.loader.exec_module(layout)


def test_the_package_has_no_import_circle_and_no_upward_import():
    facts = layout.survey(REPO)
    assert facts["circles"] == []
    assert facts["upward"] == []


def test_no_module_or_function_is_too_long():
    facts = layout.survey(REPO)
    assert [name for name, lines in facts["lines"].items() if lines > layout.MAX_MODULE_LINES] == []
    assert [name for name, lines in facts["functions"] if lines > layout.MAX_FUNCTION_LINES] == []


def test_the_checker_sees_circles_upward_imports_and_long_functions(tmp_path):
    package = tmp_path / "glyphfuse"
    (package / "core").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "core" / "__init__.py").write_text("")
    (package / "a.py").write_text("from glyphfuse import b\n")
    (package / "b.py").write_text("def f():\n    from glyphfuse.a import x\n" + "    y = 1\n" * 90)
    (package / "core" / "low.py").write_text("import glyphfuse.a\n")
    facts = layout.survey(tmp_path)
    assert facts["circles"] == [["glyphfuse.a", "glyphfuse.b"]]
    assert facts["upward"] == ["glyphfuse.core.low -> glyphfuse.a"]
    assert facts["functions"][0] == ("glyphfuse.b:f", 92)
