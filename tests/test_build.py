"""BUILD is what tools/generate_build.py writes for the current sources, and its
py_tests' main (tests/pytest_main.py) runs the tests of the file it is given."""

import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env
from tools import generate_build


def test_build_file_is_current():
  assert (REPO / "BUILD").read_text() == generate_build.build_file(), (
      "BUILD is stale: run `python -m tools.generate_build`")


def test_every_module_and_test_file_has_a_target():
  text = generate_build.build_file()
  for path in sorted((REPO / "tfc_codecs").rglob("*.py")):
    assert f'srcs = ["{path.relative_to(REPO).as_posix()}"]' in text, path
  for path in sorted((REPO / "tests").glob("test_*.py")):
    assert f'args = ["tests/{path.name}"]' in text, path
  assert text.count('main = "tests/pytest_main.py"') == len(list((REPO / "tests").glob("test_*.py")))


def test_module_deps_follow_imports():
  text = generate_build.build_file()
  rule = text[text.index('name = "tfc_codecs/container"'):]
  rule = rule[:rule.index(")")]
  assert '":tfc_codecs/errors"' in rule


@pytest.mark.slow  # Spawns pytest.
@pytest.mark.parametrize("body, code", [("assert 1 + 1 == 2", 0), ("assert 1 + 1 == 3", 1)])
def test_pytest_main_runs_the_tests_of_a_file(tmp_path, body, code):
  test = tmp_path / "test_one.py"
  test.write_text(f"def test_sum():\n  {body}\n")
  result = subprocess.run(
      [sys.executable, str(REPO / generate_build.PYTEST_MAIN), str(test), "-q"],
      cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300,
      check=False)
  assert result.returncode == code, result.stdout + result.stderr
  assert ("1 passed" if code == 0 else "1 failed") in result.stdout
