"""Every library the core imports is one that `pip install tressel` (or its extra) installs.

The test environment installs every extra, so a module the core needs but setup.py does not
declare still imports here: it arrives with a test-only package (scipy came with
scikit-image), and only a fresh `pip install -e .` shows the gap. This test reads the core's
imports instead and checks each against what the installed `tressel` declares.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

CORE = Path(__file__).resolve().parents[1] / "core"
# Files that need an extra, with the extra: the rest must work with the plain install.
EXTRA_AREAS = {"daemon/": "daemon"}
# Folders of this checkout imported by name (the review tool's package lives in hosts/).
LOCAL = {"tressel", "tressel_review"}
IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """(top-level module, optional) for every absolute import; optional means inside a `try`
    whose handlers catch ImportError, so the code has its own answer when it is missing."""
    found = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try):
            catches = any(handler.type is None or any(
                isinstance(name, ast.Name) and name.id in IMPORT_ERRORS
                for name in ast.walk(handler.type)) for handler in node.handlers)
            for child in node.body:
                visit(child, optional or catches)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, optional)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], optional))
        for child in ast.iter_child_nodes(node):
            visit(child, optional)

    visit(tree, False)
    return found


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def installed_closure(requirements: list[Requirement], extra: str = "") -> set[str]:
    """Normalised names of the distributions these requirements install, with their own
    dependencies, as pip would resolve them on this machine."""
    seen: set[str] = set()
    pending = [r for r in requirements if r.marker is None
               or r.marker.evaluate({"extra": extra})]
    while pending:
        requirement = pending.pop()
        name = _name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # declared but not installed here: nothing more to follow
        wanted = requirement.extras or {""}
        for line in requires:
            child = Requirement(line)
            if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in wanted):
                pending.append(child)
    return seen


def declared(extra: str = "") -> set[str]:
    """What `pip install tressel` (with `extra`, if given) installs, by distribution name."""
    requirements = [Requirement(line) for line in metadata.requires("tressel") or []]
    base = [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    if not extra:
        return installed_closure(base)
    return installed_closure(base) | installed_closure(requirements, extra)


def core_imports() -> dict[str, set[str]]:
    """{top-level module: files (relative to core/) importing it without a fallback}."""
    out: dict[str, set[str]] = {}
    for path in sorted(CORE.rglob("*.py")):
        for module, optional in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if optional or module in LOCAL or module in sys.stdlib_module_names \
                    or module == "__future__":
                continue
            out.setdefault(module, set()).add(path.relative_to(CORE).as_posix())
    return out


def test_the_import_scanner_sees_fallbacks():
    tree = ast.parse(
        "import numpy\n"
        "def f():\n"
        "    from scipy.spatial import cKDTree\n"
        "try:\n"
        "    import natten\n"
        "except (ImportError, OSError):\n"
        "    natten = None\n"
        "try:\n"
        "    import torch\n"
        "except RuntimeError:\n"
        "    pass\n")
    assert imports(tree) == [("numpy", False), ("scipy", False), ("natten", True),
                             ("torch", False)]


def test_every_core_import_is_declared():
    try:
        providers = metadata.packages_distributions()
        plain = declared()
    except metadata.PackageNotFoundError:
        pytest.skip("tressel is not installed (pip install -e .): no declared requirements")
    missing = []
    for module, files in sorted(core_imports().items()):
        extras = {extra for area, extra in EXTRA_AREAS.items()
                  if all(f.startswith(area) for f in files)}
        allowed = plain if not extras else set().union(*(declared(e) for e in extras))
        distributions = {_name(d) for d in providers.get(module, [module])}
        if not distributions & allowed:
            missing.append(f"{module} (from {', '.join(sorted(distributions))}) imported by "
                           f"{', '.join(sorted(files))}")
    assert not missing, ("the core imports libraries that setup.py does not install: "
                         + "; ".join(missing) + " (this reads the installed metadata: after "
                         "editing setup.py, run pip install -e . again)")
