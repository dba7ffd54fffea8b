"""The README says what the code does: every setting, every command."""

from __future__ import annotations

import re
from pathlib import Path

from distillguard.cli import _command_modules
from distillguard.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented_with_its_default():
    table = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_]+)`[^|]*\| `?([^|`]*)`? \|", README, re.M)}
    documented = set(re.findall(r"`([a-z_]+)`", "\n".join(line for line in README.splitlines() if line.startswith("| `"))))
    for name, field in Settings.model_fields.items():
        assert name in documented, f"setting {name} is not in the README"
        if name in table and field.default is not None and table[name] not in ("—", ""):
            assert table[name] == str(field.default).replace("True", "true"), (name, table[name], field.default)


def test_every_command_is_documented():
    for module in _command_modules():
        assert f"distillguard {module.NAME}" in README, module.NAME


def test_make_targets_in_readme_exist():
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    for target in set(re.findall(r"make ([a-z-]+)", README)):
        assert re.search(rf"^{target}:", makefile, re.M), target
