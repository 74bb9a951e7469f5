"""Shared helpers of the pyforkexec test suite (imported as ``helpers``: pytest puts tests/ on sys.path)."""
