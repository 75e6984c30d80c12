"""How many bytes of a file are in the page cache.

``cachestat()`` (syscall 451, Linux 6.5+) answers for a whole file in one
call without mapping it. Where it is missing (ENOSYS) the file is mapped and
``mincore()`` asked page by page. Both need the file to be writable by, or
owned by, the caller (or root): otherwise Linux answers EPERM (cachestat) or
reports only pages this process itself has mapped (mincore), so ``probe``
says the method is unusable rather than returning a wrong zero.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import os

SYS_CACHESTAT = 451  # the same number on every architecture (a post-5.x syscall)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
PAGE = mmap.PAGESIZE
MAP_FAILED = ctypes.c_void_p(-1).value


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [("nr_cache", ctypes.c_uint64), ("nr_dirty", ctypes.c_uint64), ("nr_writeback", ctypes.c_uint64),
                ("nr_evicted", ctypes.c_uint64), ("nr_recently_evicted", ctypes.c_uint64)]


def cachestat(fd: int) -> int:
    """Bytes of the open file ``fd`` in the page cache; raises OSError (ENOSYS when unsupported)."""
    span, stat = _Range(0, 0), _Stat()  # len 0: to the end of the file
    if _libc.syscall(SYS_CACHESTAT, fd, ctypes.byref(span), ctypes.byref(stat), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return stat.nr_cache * PAGE


def mincore(fd: int, size: int) -> int:
    """Bytes of the open file ``fd`` (``size`` bytes long) resident, page by page."""
    if size == 0:
        return 0
    addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, MAP_FAILED):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    try:
        pages = (size + PAGE - 1) // PAGE
        vec = (ctypes.c_ubyte * pages)()
        if _libc.mincore(addr, size, vec) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return sum(b & 1 for b in bytes(vec)) * PAGE
    finally:
        _libc.munmap(addr, size)


def supported() -> bool:
    """Whether this kernel has cachestat(): asked of fd -1, which answers EBADF where the call exists,
    ENOSYS where it does not, without opening, mapping or touching any file."""
    if _libc.syscall(SYS_CACHESTAT, -1, None, None, 0) == 0:
        return True
    return ctypes.get_errno() != errno.ENOSYS


def probe(path: str) -> str | None:
    """The method that works on ``path``: ``cachestat``, ``mincore``, or None (with the reason logged by caller)."""
    if os.geteuid() != 0 and not os.access(path, os.W_OK) and os.stat(path).st_uid != os.geteuid():
        return None  # both calls would under-report; see the module docstring
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            cachestat(fd)
            return "cachestat"
        except OSError as err:
            if err.errno not in (errno.ENOSYS, errno.EPERM):
                raise
        try:
            mincore(fd, os.fstat(fd).st_size)
            return "mincore"
        except OSError:
            return None
    finally:
        os.close(fd)


def resident_bytes(path: str, method: str) -> tuple[int, int]:
    """(resident bytes, file size) of ``path`` by ``method``; raises OSError (FileNotFoundError when gone)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        cached = cachestat(fd) if method == "cachestat" else mincore(fd, size)
        return min(cached, size), size  # the last page counts whole
    finally:
        os.close(fd)

