"""The changelog's fragments are what antsibull-changelog accepts: scripts/build-artifacts lints them
before it builds anything, so a fragment it refuses stops every release build (and the suite in the
guests, which installs those artifacts)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LINTER = Path(sys.executable).parent / "antsibull-changelog"
FRAGMENTS = sorted((REPO / "changelogs" / "fragments").glob("*.y*ml"))


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=[f.name for f in FRAGMENTS])
def test_each_fragment_is_yaml_of_sections_and_lines(fragment: Path) -> None:
    data = yaml.safe_load(fragment.read_text())
    assert isinstance(data, dict) and data, f"{fragment.name}: not a mapping of sections"
    for section, entries in data.items():
        assert isinstance(entries, list), f"{fragment.name}: {section} is not a list"
        assert all(isinstance(entry, str) for entry in entries), f"{fragment.name}: {section}: not text"


@pytest.mark.skipif(not LINTER.exists() and shutil.which("antsibull-changelog") is None,
                    reason="antsibull-changelog is not installed")
def test_antsibull_changelog_lint_accepts_every_fragment() -> None:
    linter = str(LINTER) if LINTER.exists() else "antsibull-changelog"
    done = subprocess.run([linter, "lint"], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr
