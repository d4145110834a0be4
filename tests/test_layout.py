"""Imports go one way (docs/architecture.md): every module of every package is read with `ast` and each
import of another package of the project must be one its package may make; the edge imports nothing an
edge box does not install."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = {"common", "locales", "device_drivers", "firmware_configs", "gateway", "storage", "ingest", "crm_link",
              "tracking_api"}
# package → the packages it may import (besides itself)
MAY_IMPORT: dict[str, set[str]] = {
    "common": set(),
    "locales": {"common"},
    "device_drivers": {"common"},
    "firmware_configs": {"common", "device_drivers"},
    "gateway": {"common", "device_drivers", "firmware_configs"},
    "storage": {"common"},
    "ingest": {"common", "storage"},
    "crm_link": {"common", "locales", "storage"},
    "tracking_api": {"common", "locales", "storage", "crm_link"},
    "launcher": EVERYTHING,
}
# What `pip install cargotrace[gateway]` brings (pyproject.toml), by import name.
EDGE_LIBRARIES = {"serial", "pynmea2", "paho", "yaml", "pydantic", "pydantic_core"}  # pydantic_core: pydantic's own
CENTRAL_ONLY = {"common/settings.py"}  # the central services' settings (pydantic-settings)


def _packages() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name not in ("tests", "bench"))


def _imports(path: Path) -> set[str]:
    """Top-level names of every module the file imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            found.add((node.module or "").split(".")[0])
    return found


def test_every_package_has_its_place_in_the_order() -> None:
    assert set(_packages()) == set(MAY_IMPORT)


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_packages_before_it(package: str) -> None:
    project = set(MAY_IMPORT)
    wrong = {f"{path.relative_to(ROOT)} imports {name}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for name in _imports(path) & project - {package} - MAY_IMPORT[package]}
    assert not wrong, sorted(wrong)


def test_the_edge_imports_only_what_the_gateway_extra_installs() -> None:
    allowed = EDGE_LIBRARIES | set(sys.stdlib_module_names) | {"common", "device_drivers", "firmware_configs",
                                                                "gateway", "__future__"}
    files = [path for package in ("common", "device_drivers", "firmware_configs", "gateway")
             for path in (ROOT / package).rglob("*.py") if str(path.relative_to(ROOT)) not in CENTRAL_ONLY]
    wrong = {f"{path.relative_to(ROOT)} imports {name}" for path in files for name in _imports(path) - allowed}
    assert not wrong, sorted(wrong)


def test_the_test_reads_real_imports() -> None:
    """The rule above would pass on files it cannot see: it must see this module's own imports."""
    assert {"ast", "sys", "pathlib", "pytest"} <= _imports(Path(__file__))
