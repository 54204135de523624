"""Atomic, non-clobbering file writes.

Data goes to an unnamed file in the output's directory (Linux O_TMPFILE),
which is linked into place only when complete, so a process killed at any
moment (even SIGKILL) leaves neither a partial output nor a temporary file.
Where O_TMPFILE is missing, a named `.tmp-*` file is used instead.
"""

import errno
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
  if _write_unnamed(parent, path, data, overwrite):
    return
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


_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT,
                errno.EPERM, errno.EXDEV)


def _write_unnamed(parent: str, path: str, data: bytes, overwrite: bool) -> bool:
  """atomic_write through an O_TMPFILE file; False if the platform or file
  system cannot (no O_TMPFILE, no /proc, no hard links)."""
  flag = getattr(os, "O_TMPFILE", 0)
  if not flag:
    return False
  try:
    fd = os.open(parent, flag | os.O_WRONLY, 0o644 & ~_umask())
  except OSError as e:
    if e.errno in _UNSUPPORTED:
      return False
    raise CodecError(f"cannot write {path}: {e.strerror}") from None
  temp = None
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
      if overwrite:
        temp = os.path.join(parent, f".tmp-{os.getpid()}-{id(data):x}")
      _link_fd(f.fileno(), temp or path)  # Never clobbers.
    if temp:
      os.replace(temp, path)
    return True
  except FileExistsError:
    raise CodecError(f"output {path} exists (use --overwrite to replace it)") from None
  except OSError as e:
    if temp and os.path.lexists(temp):
      os.unlink(temp)
    if e.errno in _UNSUPPORTED:
      return False
    raise CodecError(f"cannot write {path}: {e.strerror}") from None


def _link_fd(fd: int, path: str) -> None:
  """Gives the unnamed file `fd` the name `path` (linkat, following
  /proc/self/fd/N; a src_dir_fd makes Python call linkat, not link)."""
  fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
  try:
    os.link(str(fd), path, src_dir_fd=fds, follow_symlinks=True)
  finally:
    os.close(fds)


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
