"""Atomic, non-clobbering file writes."""

import os
import tempfile

from tfc_codecs.errors import CodecError


def check_writable(path: str, overwrite: bool) -> None:
  """Fails early if `path` exists (without overwrite) or is a directory."""
  if os.path.isdir(path):
    raise CodecError(f"output {path} is a directory")
  if os.path.lexists(path) and not overwrite:
    raise CodecError(f"output {path} exists (use --overwrite to replace it)")
  parent = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(parent):
    raise CodecError(f"output directory {parent} does not exist")


def atomic_write(path: str, data: bytes, overwrite: bool = False) -> None:
  """Writes `data` to a temporary file next to `path`, then renames it."""
  check_writable(path, overwrite)
  parent = os.path.dirname(os.path.abspath(path))
  try:
    fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=parent)
  except OSError as e:
    raise CodecError(f"cannot write {path}: {e.strerror}") from None
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(temp, 0o644 & ~_umask())
    if overwrite:
      os.replace(temp, path)
    else:
      _move_new(temp, path)
  except FileExistsError:
    os.unlink(temp)
    raise CodecError(f"output {path} exists (use --overwrite to replace it)") from None
  except OSError as e:
    if os.path.exists(temp):
      os.unlink(temp)
    raise CodecError(f"cannot write {path}: {e.strerror}") from None
  except BaseException:
    if os.path.exists(temp):
      os.unlink(temp)
    raise


def _move_new(temp: str, path: str) -> None:
  """Renames `temp` to `path`; FileExistsError, not clobbering, if path exists."""
  try:
    os.link(temp, path)  # Fails, rather than clobbers, if path appeared meanwhile.
  except FileExistsError:
    raise
  except OSError:  # No hard links on this file system (FAT, some network FS):
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # claim the name,
    try:
      os.replace(temp, path)  # then fill it atomically.
    except BaseException:
      os.unlink(path)
      raise
    return
  os.unlink(temp)


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask
