"""Markers shared by the core test modules."""

import os

import pytest

# The core suite creates namespaces, cgroups and netns as root, and drops to uid 65534 itself where
# Go's tests run unprivileged.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the core suite runs as root")
