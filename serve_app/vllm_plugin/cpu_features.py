"""Make AMX usable in this process before vLLM's CPU kernels touch it.

Linux hands out AMX tile state only to processes that ask for it (arch_prctl ARCH_REQ_XCOMP_PERM);
torch reports AMX support without asking, and vLLM's bf16 CPU attention then dies with SIGILL.
"""
from __future__ import annotations

import ctypes
import logging
import platform

logger = logging.getLogger(__name__)

_SYS_ARCH_PRCTL = 158  # x86_64 syscall number
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_done = False


def enable_amx_tile_state() -> bool:
    """Request AMX tile data permission once per process; True if granted (False off x86_64 Linux)."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA)
    if rc != 0:
        logger.debug("AMX tile permission not granted (errno %d): CPU has no AMX", ctypes.get_errno())
        return False
    _done = True
    return True
