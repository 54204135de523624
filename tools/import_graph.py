"""The import graph of the tfc_codecs package: which of its modules each module imports.

Every `import` and `from ... import` statement of every module under
tfc_codecs/ counts, at module level or inside a function (a deferred import
still means the importer cannot run without the imported module), except those
under `if TYPE_CHECKING:`, which never run. `from tfc_codecs.x import y` is an
edge to tfc_codecs.x.y if that is a module, else to tfc_codecs.x. Parent
packages' `__init__` modules are edges only when named (`import tfc_codecs`,
`from tfc_codecs import load`): what their own imports pull in are their edges.

    python -m tools.import_graph    # prints the graph and any cycle; exit 1 on a cycle
"""

import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "tfc_codecs"


def module_files(repo: Path = REPO) -> Dict[str, Path]:
  """Dotted module name -> source file, for every module of the package."""
  modules = {}
  for path in sorted((repo / PACKAGE).rglob("*.py")):
    parts = path.relative_to(repo).with_suffix("").parts
    if parts[-1] == "__init__":
      parts = parts[:-1]
    modules[".".join(parts)] = path
  return modules


def _is_type_checking(test: ast.expr) -> bool:
  return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
      isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
  """Import statements anywhere in `tree`, skipping `if TYPE_CHECKING:` bodies."""
  stack = [tree]
  while stack:
    node = stack.pop()
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      yield node
    elif isinstance(node, ast.If) and _is_type_checking(node.test):
      stack.extend(node.orelse)
    else:
      stack.extend(ast.iter_child_nodes(node))


def _imported(module: str, path: Path, node, modules) -> Set[str]:
  """The package modules one import statement of `module` loads by name."""
  if isinstance(node, ast.Import):
    names = [alias.name for alias in node.names]
  else:
    base = node.module or ""
    if node.level:  # Relative: from the module's package, up level - 1 packages.
      package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
      anchor = package[:len(package) - node.level + 1]
      base = ".".join(anchor + ([base] if base else []))
    names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
             for alias in node.names]
  found = set()
  for name in names:
    while name and name not in modules:  # `import tfc_codecs.x.y` of a name in x.
      name = name.rpartition(".")[0]
    if name.split(".")[0] == PACKAGE and name:
      found.add(name)
  return found


def import_graph(repo: Path = REPO) -> Dict[str, Set[str]]:
  """Module -> the package modules it imports (itself excluded)."""
  modules = module_files(repo)
  graph = {}
  for module, path in modules.items():
    tree = ast.parse(path.read_text(), str(path))
    graph[module] = set().union(*(_imported(module, path, node, modules)
                                  for node in _import_nodes(tree))) - {module}
  return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
  """One cycle [a, b, ..., a] per strongly connected group of modules that
  import each other (Tarjan's algorithm); empty if the graph is acyclic."""
  index, low, on_stack, stack, groups = {}, {}, set(), [], []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for child in sorted(graph[node]):
      if child not in index:
        visit(child)
        low[node] = min(low[node], low[child])
      elif child in on_stack:
        low[node] = min(low[node], index[child])
    if low[node] == index[node]:
      group = set()
      while True:
        member = stack.pop()
        on_stack.discard(member)
        group.add(member)
        if member == node:
          break
      if len(group) > 1:
        groups.append(group)

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: Dict[str, Set[str]], group: Set[str]) -> List[str]:
  """A shortest cycle through the group's first module (breadth-first search)."""
  start = min(group)
  paths = {start: [start]}
  frontier = [start]
  while frontier:
    following = []
    for node in frontier:
      for child in sorted(graph[node] & group):
        if child == start:
          return paths[node] + [start]
        if child not in paths:
          paths[child] = paths[node] + [child]
          following.append(child)
    frontier = following
  raise AssertionError(f"no cycle in {sorted(group)}")


def main() -> int:
  graph = import_graph()
  for module in sorted(graph):
    print(f"{module} -> {', '.join(sorted(graph[module])) or '(none)'}")
  found = cycles(graph)
  for cycle in found:
    print("cycle: " + " -> ".join(cycle))
  print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports, {len(found)} cycles")
  return 1 if found else 0


if __name__ == "__main__":
  sys.exit(main())
