"""docs/design.md's module map matches the code: every module it names exists, every codec and model module is named."""

from __future__ import annotations

import re

from conftest import ROOT

PACKAGE = ROOT / "neuralvox"


def module_map() -> str:
    text = (ROOT / "docs" / "design.md").read_text()
    start = text.index("## Module map")
    return text[start : text.index("\n## ", start + 1)]


def test_every_module_the_map_names_exists() -> None:
    named = set(re.findall(r"\b([a-z_]+\.py)\b", module_map()))
    existing = {path.name for path in PACKAGE.rglob("*.py")}
    assert named and named <= existing, sorted(named - existing)


def test_every_codec_and_model_module_is_on_the_map() -> None:
    named = set(re.findall(r"\b([a-z_]+\.py)\b", module_map()))
    modules = {p.name for folder in ("codec", "model") for p in (PACKAGE / folder).glob("*.py")} - {"__init__.py"}
    assert modules <= named, sorted(modules - named)
