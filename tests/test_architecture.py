"""The package's shape stays as docs/architecture.md draws it: modules use each other's public
names only, and the layer picture there lists every subpackage that exists."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "helpers"
LAYERS = ("core", "data", "models", "train", "inference", "evaluation", "reporting", "run")


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__")


def _private_uses(source: str, me: str) -> list[str]:
    """`from helpers.x import _y` and `x._y` where x is another helpers module."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> helpers module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if alias.name.startswith("_") and node.module != me:
                    found.append(f"{me}: from {node.module} import {alias.name}")
                if (SRC.parent / target.replace(".", "/")).with_suffix(".py").exists() or (
                    SRC.parent / target.replace(".", "/")
                ).is_dir():
                    modules[alias.asname or alias.name] = target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("helpers") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and modules[node.value.id] != me
        ):
            found.append(f"{me}: {modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    found = [
        use
        for path in sorted(SRC.rglob("*.py"))
        for use in _private_uses(path.read_text(), _module_name(path))
    ]
    assert found == []


def test_the_checker_sees_a_private_import():
    source = (
        "from helpers.train.pipeline import _remember\n"
        "from helpers.models import registry\nregistry._REGISTRY\n"
    )
    assert _private_uses(source, "helpers.core.probe") == [
        "helpers.core.probe: from helpers.train.pipeline import _remember",
        "helpers.core.probe: helpers.models.registry._REGISTRY",
    ]
    assert _private_uses(source, "helpers.models.registry") == [
        "helpers.models.registry: from helpers.train.pipeline import _remember"
    ]


def test_the_documented_layers_are_the_subpackages():
    subpackages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert subpackages == set(LAYERS)
    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    assert all(f"| {layer}/" in doc for layer in LAYERS)
    contract = (SRC.parents[1] / "pyproject.toml").read_text()
    listed = [
        line.strip().strip('",')
        for line in contract.splitlines()
        if line.strip().startswith('"helpers.') and line.strip().endswith('",')
    ]
    assert listed[: len(LAYERS)] == [f"helpers.{layer}" for layer in reversed(LAYERS)]
