"""scripts/import_graph.py: the package has no import cycle, and the script would see one (function-level
imports included, TYPE_CHECKING imports not)."""

from scripts.import_graph import cycles, graph, modules


def _package(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / "mlplatform" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_mlplatform_has_no_import_cycle():
    edges = graph()
    assert "mlplatform.serving.loader" in edges and "mlplatform.names" in edges
    assert cycles(edges) == []


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from mlplatform.b import x\n",
            "b.py": "x = 1\ndef f():\n    from mlplatform import a\n",
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlplatform.a import x\n",
        },
    )
    assert set(modules(root)) == {"mlplatform", "mlplatform.a", "mlplatform.b", "mlplatform.c"}
    edges = graph(root)
    assert edges["mlplatform.c"] == set(), "annotations only: not a run-time import"
    assert cycles(edges) == [["mlplatform.a", "mlplatform.b"]]
