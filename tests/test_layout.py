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
    assert facts["folder_circles"] == []
    assert facts["upward"] == []


def test_the_stage_folders_keep_their_order():
    facts = layout.survey(REPO)
    stages = ["core", "data", "ocr", "sampling", "training"]
    assert [names[0] for names in layout.LAYERS[:5]] == stages  # the pipeline, lowest first
    for name in stages:
        assert name in facts["folders"], f"glyphfuse/{name}/ is missing"
    assert not set(facts["folders"]) - {name for names in layout.LAYERS for name in names}, "a folder outside LAYERS"
    # every folder imports only folders below it: this is what the upward check enforces
    for name, targets in facts["folders"].items():
        for target in targets:
            assert layout.layer(f"glyphfuse.{target}.x") < layout.layer(f"glyphfuse.{name}.x"), f"{name} -> {target}"


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
    for stage in ("data", "sampling"):
        (package / stage).mkdir()
        (package / stage / "__init__.py").write_text("")
    (package / "data" / "reader.py").write_text("from glyphfuse.sampling import drawer\n")  # data above sampling: upward
    (package / "sampling" / "drawer.py").write_text("from glyphfuse.data.reader import x\n")
    facts = layout.survey(tmp_path)
    assert facts["circles"] == [["glyphfuse.a", "glyphfuse.b"], ["glyphfuse.data.reader", "glyphfuse.sampling.drawer"]]
    assert facts["folder_circles"] == [["a", "b"], ["data", "sampling"]]  # a top-level module is a folder of its own
    assert facts["upward"] == ["glyphfuse.core.low -> glyphfuse.a", "glyphfuse.data.reader -> glyphfuse.sampling.drawer"]
    assert facts["functions"][0] == ("glyphfuse.b:f", 92)
