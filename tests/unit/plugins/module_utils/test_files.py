"""A file the modules write: a write that fails leaves the old file as it was and no temporary file."""

from __future__ import annotations

import os

import pytest
from ansible_collections.pyforkexec.isolation.plugins.module_utils import files


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = tmp_path / "web.json"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):  # the text cannot be written: as a full disk, mid-write
        files.write(None, str(path), "new \udcff\n", 0o644)
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["web.json"]
