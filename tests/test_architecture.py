"""The layers, checked from the source: who may import whom, no import cycle, and Redis
commands only inside the engine. Every `import` counts, TYPE_CHECKING ones included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "liveserver"

# layer -> the layers it may import (besides itself). Layers call downward only:
# edge -> hub -> engine -> Redis; commerce plugs into hub and API through interfaces.
ALLOWED = {
    "core": set(),
    "engine": {"core"},
    "hub": {"core", "engine"},
    "webhooks": {"core", "engine"},
    "commerce": {"core", "engine", "hub", "webhooks"},
    "media": {"core", "engine", "hub"},
    "reports": {"core", "engine", "hub", "commerce", "webhooks"},
    "edge": {"core", "engine", "hub", "commerce", "media", "reports", "webhooks"},
    "cli": {"core", "engine", "hub", "commerce", "media", "reports", "edge", "webhooks"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """liveserver modules imported by one file (absolute imports only: the package uses no relative ones)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            if node.module and node.module.startswith("liveserver"):
                found.add(node.module)
                for alias in node.names:  # `from liveserver.commerce import stats` imports a module
                    if (PKG.parent / (node.module.replace(".", "/") + "/" + alias.name + ".py")).exists():
                        found.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("liveserver"))
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PKG.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PKG / parts[1]).is_dir()) else "top"


def test_layers_call_downward_only() -> None:
    wrong = []
    for module, deps in graph().items():
        src = layer(module)
        if src == "top":  # liveserver/__init__.py and __main__.py
            continue
        assert src in ALLOWED, f"{module}: folder {src!r} is not a known layer"
        for dep in deps:
            dst = layer(dep)
            if dst != src and dst not in ALLOWED[src]:
                wrong.append(f"{module} -> {dep}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle() -> None:
    g = graph()
    # Importing a package runs its __init__: a submodule import depends on its parents.
    edges = {m: {d for d in deps if d in g and d != m} | {p for p in _parents(m) if p in g} for m, deps in g.items()}
    for m in list(edges):
        edges[m] = {d for d in edges[m] if not m.startswith(d + ".")}  # a package's own children are not a cycle
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]


def test_redis_commands_only_in_the_engine() -> None:
    command = re.compile(r"execute_command|\.pipeline\(|\.evalsha|\.xadd|\.xread|\.hget|\.zrem")
    hits = [f"{p.relative_to(PKG.parent)}:{i}" for p in PKG.rglob("*.py") if "engine" not in p.relative_to(PKG).parts[:1]
            for i, line in enumerate(p.read_text().splitlines(), 1) if command.search(line)]
    assert not hits, hits


def test_every_lua_script_documents_keys_argv_and_reply() -> None:
    for path in (PKG / "lua").glob("*.lua"):
        head = path.read_text().split("\nlocal ", 1)[0]
        if path.name.startswith("_"):  # a fragment pasted into scripts
            assert not any(l.startswith("--! include") for l in path.read_text().splitlines()), "fragments do not nest"
            continue
        for word in ("KEYS[1]", "ARGV", "Reply"):
            assert word in head, f"{path.name}: header does not document {word}"
