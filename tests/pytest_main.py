"""Runs pytest on the files given as arguments: the `main` of every py_test in
BUILD (Bazel runs a test's main as a script; the test files have none).

    python tests/pytest_main.py tests/test_codecs.py [-m "not slow"]
"""

import sys

import pytest

if __name__ == "__main__":
  # No .pytest_cache: Bazel's runfiles tree is read-only.
  sys.exit(pytest.main(["-p", "no:cacheprovider"] + sys.argv[1:]))
