"""The package's shape: dependencies point one way (no import cycle between modules, and the
stages' subpackages only import those below them), no private name is imported from another
module, and no function of the send path is over ~60 lines."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "mailnb"

#: the layers, bottom first: a module may import from its own layer's package and any below
LAYERS = [
    {"errors", "util"},
    {"audience"},
    {"config"},
    {"compose"},
    {"journal", "transports", "inbound"},
    {"sending"},
    {"__init__", "job", "cli", "widgets", "demo", "sink"},
]


def module_name(path):
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def resolve(module, node):
    """The dotted name (below mailnb) an ImportFrom of ``module`` names, or None if outside."""
    if node.level == 0:
        name = node.module or ""
        return name[len("mailnb."):] if name.startswith("mailnb.") else None
    base = module.split(".")
    is_package = (PACKAGE / module.replace(".", "/") / "__init__.py").exists() or \
        module == "__init__"
    base = base if is_package and module != "__init__" else base[:-1]
    if module == "__init__":
        base = []
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def module_imports():
    graph, private = {}, []
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        if module.endswith(".__init__"):
            module = module[:-len(".__init__")]
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = resolve(module, node)
            if target is None:
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" if target else n for n in names
                          if (PACKAGE / (f"{target}/{n}".strip("/").replace(".", "/") + ".py")).exists()]
            deps.update(submodules or [target])
            private += [(module, target, n) for n in names
                        if n.startswith("_") and n != "__version__"]
        graph[module] = deps - {module, ""}
    return graph, private


def layer(module):
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_the_layout_shows_the_pipeline():
    """A subpackage a stage, the doors on top: every top-level name has a layer, and each
    import points to the importing module's own package or a layer below."""
    tops = {p.stem for p in PACKAGE.glob("*.py")} | \
        {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert tops == set().union(*LAYERS), f"not in a layer: {tops ^ set().union(*LAYERS)}"
    graph, _ = module_imports()
    upward = [f"{m} -> {d}" for m, deps in graph.items() for d in deps if layer(d) > layer(m)]
    assert upward == [], "imports that point up:\n" + "\n".join(sorted(upward))


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
    paths = [p for pattern in ("sending/*.py", "job.py", "config/*.py", "journal/*.py",
                               "audience/*.py", "compose/templates.py", "compose/messages.py")
             for p in sorted(PACKAGE.glob(pattern))]
    for path in paths:
        name = module_name(path)
        tree = ast.parse(path.read_text())
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
    heavy = ["mailnb.widgets", "ipywidgets", "matplotlib", "mailnb.inbound.bounce_rules",
             "mailnb.inbound.classify", "psycopg", "msal", "google.auth", "css_inline", "papermill"]
    code = ("import sys, mailnb; print(' '.join(m for m in sys.argv[1:] if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *heavy], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.split() == [], f"import mailnb loaded {out.stdout.split()}"


#: modules that are reviewed rule data, not code (each names its sources): exempt from the size
RULE_DATA = {"inbound/bounce_rules.py"}


def test_no_module_is_a_book_and_no_class_a_god():
    """One concept a module: none over 600 lines (rule data aside); none of its classes over 25
    methods."""
    long, big = [], []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        text = path.read_text()
        if rel not in RULE_DATA and len(text.splitlines()) > 600:
            long.append(f"{rel}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                methods = [n for n in node.body
                           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
                if len(methods) > 25:
                    big.append(f"{rel}: {node.name} has {len(methods)} methods")
    assert long == [] and big == []
