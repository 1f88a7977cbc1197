"""The package layout: every module and config file ships in a wheel, not only editable."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _installed_name(directory: Path) -> str:
    relative = directory.relative_to(ROOT)
    for package, folder in SETUPTOOLS["package-dir"].items():
        folder_path = Path(folder)
        if relative == folder_path or folder_path in relative.parents:
            rest = relative.relative_to(folder_path).parts
            return ".".join([package, *rest])
    raise AssertionError(f"{relative} is not under any package-dir mapping")


def test_every_python_package_is_listed() -> None:
    folders = [ROOT / "agentgym", ROOT / "envs", ROOT / "trainers"]
    found = {
        _installed_name(init.parent)
        for folder in folders
        for init in folder.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    missing = found - set(SETUPTOOLS["packages"])
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"


def test_every_config_folder_ships_its_yaml() -> None:
    groups = {_installed_name(path.parent) for path in (ROOT / "configs").rglob("*.yaml")}
    packages = set(SETUPTOOLS["packages"])
    data = SETUPTOOLS["package-data"]
    for group in groups:
        assert group in packages, f"add {group!r} to [tool.setuptools] packages"
        assert "*.yaml" in data.get(group, []), f"add {group!r} = ['*.yaml'] to package-data"
