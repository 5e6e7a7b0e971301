"""Swap two paths atomically, in a tight loop: ``python swapper.py A B``.

Each swap is ``renameat2(A, B, RENAME_EXCHANGE)``, so at every instant one name is a real
folder and the other a symlink, and which is which keeps changing. Prints ``ready`` once
the first swap succeeded, and the number of swaps when stdin closes.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading

RENAME_EXCHANGE = 2
AT_FDCWD = -100
SYSCALL_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}


def main() -> None:
    first, second = (os.fsencode(p) for p in sys.argv[1:3])
    libc = ctypes.CDLL(None, use_errno=True)
    number = SYSCALL_RENAMEAT2[platform.machine()]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    swaps = 0
    while not stop.is_set():
        if libc.syscall(number, AT_FDCWD, first, AT_FDCWD, second, RENAME_EXCHANGE) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
        swaps += 1
        if swaps == 1:
            print("ready", flush=True)
    print(swaps, flush=True)


if __name__ == "__main__":
    main()
