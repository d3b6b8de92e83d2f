"""The package's shape: dependencies point one way (no import cycle between modules), no private
name is imported from another module, and no function of the send path is over ~60 lines."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "mailnb"


def module_imports():
    graph, private = {}, []
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                target = node.module or ""
                names = [a.name for a in node.names]
                if not target:                         # from . import demo
                    deps.update(names)
                else:
                    deps.add(target.split(".")[0])
                private += [(path.stem, target, n) for n in names
                            if n.startswith("_") and n != "__version__"]
        graph[path.stem] = deps - {path.stem}
    return graph, private


def test_no_import_cycle_between_modules():
    graph, _ = module_imports()
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "active", f"import cycle: {' -> '.join(trail + [node])}"
        state[node] = "active"
        for dep in sorted(graph.get(node, ())):
            visit(dep, trail + [node])
        state[node] = "done"

    for module in sorted(graph):
        if module != "__init__":
            visit(module, [])


def test_no_private_name_crosses_a_module():
    _, private = module_imports()
    assert private == []


def test_the_send_path_reads_as_short_functions():
    long = []
    for name in ("sender", "plan", "job", "options", "pacing", "journal", "recipients",
                 "templates", "messages", "settings"):
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 62:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert long == []


def test_import_mailnb_leaves_the_heavy_parts_for_when_they_are_used():
    """Widgets, plotting, the bounce tables, PostgreSQL's driver and the sign-in libraries load
    when a function needs them, so `import mailnb` stays quick (bench/imports.py times it)."""
    import subprocess
    import sys
    heavy = ["mailnb.widgets", "ipywidgets", "matplotlib", "mailnb.bounce_rules",
             "mailnb.classify", "psycopg", "msal", "google.auth", "css_inline", "papermill"]
    code = ("import sys, mailnb; print(' '.join(m for m in sys.argv[1:] if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *heavy], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == [], f"import mailnb loaded {out.stdout.split()}"
