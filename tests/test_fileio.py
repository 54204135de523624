"""Atomic, non-clobbering output files (what the CLI writes with)."""

import errno
import os
import stat

import pytest

from tfc_codecs import fileio
from tfc_codecs.errors import CodecError


def leftovers(folder):
  return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def test_writes_new_file(tmp_path):
  path = tmp_path / "out.tfci"
  fileio.atomic_write(str(path), b"data")
  assert path.read_bytes() == b"data"
  mask = os.umask(0)
  os.umask(mask)
  assert stat.S_IMODE(path.stat().st_mode) == 0o644 & ~mask
  assert leftovers(tmp_path) == []


def test_refuses_existing_output(tmp_path):
  path = tmp_path / "out.tfci"
  path.write_bytes(b"original")
  with pytest.raises(CodecError, match="exists"):
    fileio.atomic_write(str(path), b"new")
  assert path.read_bytes() == b"original"
  fileio.atomic_write(str(path), b"new", overwrite=True)
  assert path.read_bytes() == b"new"
  assert leftovers(tmp_path) == []


def test_refuses_dangling_symlink(tmp_path):
  link = tmp_path / "out.tfci"
  os.symlink(tmp_path / "nowhere", link)
  with pytest.raises(CodecError, match="exists"):
    fileio.atomic_write(str(link), b"new")
  assert os.readlink(link) == str(tmp_path / "nowhere")
  assert not (tmp_path / "nowhere").exists()


def test_bad_output_locations(tmp_path):
  with pytest.raises(CodecError, match="directory"):
    fileio.atomic_write(str(tmp_path), b"x", overwrite=True)
  with pytest.raises(CodecError, match="does not exist"):
    fileio.atomic_write(str(tmp_path / "no" / "out.png"), b"x")
  assert leftovers(tmp_path) == []


def test_output_appearing_meanwhile_is_not_clobbered(tmp_path, monkeypatch):
  path = tmp_path / "out.tfci"
  monkeypatch.setattr(fileio, "check_writable", lambda *args: None)
  path.write_bytes(b"someone else's")
  with pytest.raises(CodecError, match="exists"):
    fileio.atomic_write(str(path), b"new")
  assert path.read_bytes() == b"someone else's"
  assert leftovers(tmp_path) == []


def test_file_system_without_hard_links(tmp_path, monkeypatch):
  """FAT-formatted drives and some network file systems refuse link()."""

  def no_links(*args, **kwargs):
    raise OSError(errno.EPERM, "Operation not permitted")

  monkeypatch.setattr(os, "link", no_links)
  path = tmp_path / "out.tfci"
  fileio.atomic_write(str(path), b"data")
  assert path.read_bytes() == b"data"
  with pytest.raises(CodecError, match="exists"):
    fileio.atomic_write(str(path), b"new")
  assert path.read_bytes() == b"data"
  assert leftovers(tmp_path) == []


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):

  def disk_full(*args):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "fsync", disk_full)
  path = tmp_path / "out.tfci"
  with pytest.raises(CodecError, match="No space left"):
    fileio.atomic_write(str(path), b"data")
  assert not path.exists() and leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="Linux O_TMPFILE only")
def test_nothing_is_visible_before_the_data_is_complete(tmp_path, monkeypatch):
  """The data is written to an unnamed file, so a process killed mid-write
  (SIGKILL: no cleanup runs) leaves no partial or temporary file behind."""
  seen, real_fsync = [], os.fsync

  def spy(fd):
    seen.append(sorted(os.listdir(tmp_path)))
    real_fsync(fd)

  monkeypatch.setattr(os, "fsync", spy)
  path = tmp_path / "out.tfci"
  fileio.atomic_write(str(path), b"data")
  fileio.atomic_write(str(path), b"new data", overwrite=True)
  assert seen == [[], ["out.tfci"]]
  assert path.read_bytes() == b"new data" and leftovers(tmp_path) == []
