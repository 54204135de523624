"""The package's internal import graph has no cycles (tools/import_graph.py)."""

import textwrap

from tools import import_graph


def test_package_has_no_import_cycles():
  found = import_graph.cycles(import_graph.import_graph())
  assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_graph_covers_every_module_and_resolves_known_imports():
  graph = import_graph.import_graph()
  assert set(graph) == set(import_graph.module_files())
  assert "tfc_codecs.errors" in graph["tfc_codecs.container"]
  assert all(m.startswith("tfc_codecs") for deps in graph.values() for m in deps)


def _package(tmp_path, files):
  for name, text in files.items():
    path = tmp_path / "tfc_codecs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
  return import_graph.import_graph(tmp_path)


def test_import_forms_resolve(tmp_path):
  graph = _package(tmp_path, {
      "__init__.py": "",
      "a.py": """
          import os
          from . import b
          from .sub import c
          def f():
            import tfc_codecs.sub.d
            from tfc_codecs.sub.c import name
          """,
      "b.py": """
          from typing import TYPE_CHECKING
          if TYPE_CHECKING:
            from tfc_codecs import a
          from tfc_codecs import sub
          """,
      "sub/__init__.py": "from .. import b\n",
      "sub/c.py": "from ..b import x\n",
      "sub/d.py": "",
  })
  assert graph == {
      "tfc_codecs": set(),
      "tfc_codecs.a": {"tfc_codecs.b", "tfc_codecs.sub.c", "tfc_codecs.sub.d"},
      "tfc_codecs.b": {"tfc_codecs.sub"},
      "tfc_codecs.sub": {"tfc_codecs.b"},
      "tfc_codecs.sub.c": {"tfc_codecs.b"},
      "tfc_codecs.sub.d": set(),
  }
  assert import_graph.cycles(graph) == [["tfc_codecs.b", "tfc_codecs.sub", "tfc_codecs.b"]]


def test_cycles_finds_each_group_once():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
  assert sorted(import_graph.cycles(graph)) == [["a", "b", "c", "a"], ["e", "f", "e"]]
  assert import_graph.cycles({"a": {"b"}, "b": set()}) == []
