"""The sandbox a ``run_command`` shell runs in.

Started as ``python -I -S -c <import this, call main>`` (see ``CommandSandbox.argv``), or as
a script, with ``PARENT_PID WORKSPACE COMMAND [HIDDEN_PATH...]``. It runs outside airlock's
interpreter and imports only a few built-in modules: each import costs every command its
time (hence no json, typing or enum). Three processes, each tied to the one that started it
by ``PR_SET_PDEATHSIG``, so that none outlives airlock:

- the *launcher* (airlock's child, the leader of the command's process group) makes new PID,
  mount and IPC namespaces (in a user namespace of their own when airlock is not root, or
  root may not make them), then waits for
- the *init* (PID 1 of the new PID namespace), which builds the file system view (below),
  starts the command and exits when the command's shell does. The kernel then kills
  everything left in the namespace: background jobs, ``setsid`` and double forks included.
- the *command*: ``/bin/sh -c`` with no capability at all and no way to get one (an empty
  bounding set, ``no_new_privs``, ``SECBIT_NOROOT`` locked), so it cannot undo any of this.

The view: every mount read-only, ``nosuid`` and ``nodev``; a fresh read-only ``/proc`` that
shows only the namespace's processes; a ``/dev`` with only null, zero, full, random, urandom,
tty, a private ``pts`` and ``shm``; private ``/tmp``, ``/var/tmp`` and ``/run`` (host sockets
hidden); each hidden path covered (a directory by an empty read-only tmpfs, a file by an
unopenable node); and the workspace, writable, at its own path, even inside a hidden folder.

Exit status: the shell's (128 + N when signal N ended it); ``SETUP_FAILED`` with one line
``airlock sandbox: ...`` on stderr when the sandbox could not be built.
"""

from __future__ import annotations

import ctypes
import os
import select
import stat
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and enum (in signal) would cost every command their import time
    import signal
    from collections.abc import Sequence
    from typing import NoReturn
else:
    import _signal as signal

SETUP_FAILED = 125
"""Exit status of a sandbox that could not be built (the command did not start)."""

_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
_MS_BIND, _MS_REC, _MS_PRIVATE = 0x1000, 0x4000, 0x40000
_MNT_DETACH = 0x2
_ATTR_RDONLY, _ATTR_NOSUID, _ATTR_NODEV, _ATTR_NOEXEC = 0x1, 0x2, 0x4, 0x8
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 0x1
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_SET_SECUREBITS = 28
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# noroot, no_setuid_fixup and no_cap_ambient_raise set, keep_caps clear: each one locked.
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
_CAPABILITY_VERSION_3 = 0x20080522
# open_tree, move_mount and mount_setattr have one number on every architecture but
# alpha, ia64 and mips (Linux >= 5.12 for all three).
_SYSCALLS = {"open_tree": 428, "move_mount": 429, "mount_setattr": 442}
_GENERIC_NUMBERS = ("x86_64", "aarch64", "arm", "riscv", "ppc", "s390", "loongarch", "i686")

_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_PRIVATE = {"/tmp": 0o1777, "/var/tmp": 0o1777, "/run": 0o755}
_KEEP_IN_RUN = "/run/systemd/resolve"
"""Where /etc/resolv.conf points on systemd-resolved hosts: DNS must keep working."""


class SetupError(Exception):
    """The sandbox could not be built; the message says which step failed."""


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(code)}")
    return result


def _syscall(name: str, *args: object) -> int:
    machine = os.uname().machine
    if not machine.startswith(_GENERIC_NUMBERS):
        raise SetupError(f"{name}: not supported on {machine}")
    result: int = _libc.syscall(ctypes.c_long(_SYSCALLS[name]), *args)
    return result


def _prctl(option: int, value: int, what: str) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), what)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    encoded = [None if s is None else s.encode() for s in (source, target, fstype, data or None)]
    result = _libc.mount(encoded[0], encoded[1], encoded[2], ctypes.c_ulong(flags), encoded[3])
    _check(result, f"mount {target}")


def _set_attributes(target: str | int, attributes: int, *, recursive: bool = False) -> None:
    """Add mount attributes to the mount at ``target`` (a path, or a detached tree's fd)."""
    attr = _MountAttr(attr_set=attributes)
    flags = _AT_RECURSIVE if recursive else 0
    if isinstance(target, int):
        fd, path, flags = target, b"", flags | _AT_EMPTY_PATH
    else:
        fd, path = _AT_FDCWD, target.encode()
    result = _syscall("mount_setattr", fd, path, ctypes.c_uint(flags),
                      ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))  # fmt: skip
    _check(result, f"mount_setattr {target}")


def _clone_tree(path: str) -> int:
    """A detached copy of the mounts at and below ``path``, taken before anything is covered."""
    flags = _OPEN_TREE_CLONE | _AT_RECURSIVE | os.O_CLOEXEC
    return _check(_syscall("open_tree", _AT_FDCWD, path.encode(), ctypes.c_uint(flags)),
                  f"open_tree {path}")  # fmt: skip


def _attach(tree: int, target: str) -> None:
    result = _syscall("move_mount", tree, b"", _AT_FDCWD, target.encode(),
                      ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH))  # fmt: skip
    _check(result, f"move_mount {target}")
    os.close(tree)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _tmpfs(target: str, mode: int, *, size: str = "64k") -> None:
    options = f"mode={mode:o},size={size}"
    _mount("tmpfs", target, "tmpfs", _MS_NOSUID | _MS_NODEV, options)


def _make_file(target: str) -> None:
    """An empty file to mount a single file (a device) on."""
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o644))


class _View:
    """Builds the command's file system view, in the init process's mount namespace."""

    def __init__(self, workspace: str, hidden: Sequence[str], *, own_users: bool) -> None:
        self.workspace = workspace
        self.hidden = sorted(set(hidden), key=len)
        self.own_users = own_users

    def build(self) -> None:
        _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
        workspace = _clone_tree(self.workspace)
        devices = {name: _clone_tree(f"/dev/{name}") for name in _DEVICES
                   if os.path.exists(f"/dev/{name}")}  # fmt: skip
        resolver = _clone_tree(_KEEP_IN_RUN) if os.path.isdir(_KEEP_IN_RUN) else None
        _set_attributes("/", _ATTR_RDONLY | _ATTR_NOSUID | _ATTR_NODEV, recursive=True)
        self._proc()
        self._dev(devices)
        for folder, mode in _PRIVATE.items():
            self._cover(folder, mode, size="50%")
        if resolver is not None:
            os.makedirs(_KEEP_IN_RUN, exist_ok=True)
            _set_attributes(resolver, _ATTR_RDONLY | _ATTR_NOSUID | _ATTR_NODEV, recursive=True)
            _attach(resolver, _KEEP_IN_RUN)
        outside = [p for p in self.hidden if not _inside(p, self.workspace)]
        for path in outside:
            self._hide(path)
        os.makedirs(self.workspace, exist_ok=True)
        _set_attributes(workspace, _ATTR_NOSUID | _ATTR_NODEV, recursive=True)
        _attach(workspace, self.workspace)
        for path in self.hidden:
            if path not in outside and path != self.workspace:
                self._hide(path)

    def _proc(self) -> None:
        if not self.own_users:  # a user namespace may mount proc only beside a visible one
            _check(_libc.umount2(b"/proc", _MNT_DETACH), "umount /proc")
        _mount("proc", "/proc", "proc", _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)

    def _dev(self, devices: dict[str, int]) -> None:
        _mount("tmpfs", "/dev", "tmpfs", _MS_NOSUID | _MS_NOEXEC, "mode=755,size=64k")
        for name, tree in devices.items():
            _make_file(f"/dev/{name}")
            _attach(tree, f"/dev/{name}")
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                             ("ptmx", "pts/ptmx")):  # fmt: skip
            os.symlink(target, f"/dev/{name}")
        os.mkdir("/dev/pts")
        os.mkdir("/dev/shm")
        _mount("devpts", "/dev/pts", "devpts", _MS_NOSUID | _MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620")  # fmt: skip
        _tmpfs("/dev/shm", 0o1777, size="50%")
        _set_attributes("/dev", _ATTR_RDONLY)

    def _cover(self, path: str, mode: int, *, size: str = "64k") -> bool:
        """An empty tmpfs over the folder ``path`` (never over the workspace itself), with
        the way to the workspace made again inside it; whether it was covered."""
        if path == self.workspace or not os.path.isdir(path) or os.path.islink(path):
            return False
        _tmpfs(path, mode, size=size)
        if _inside(self.workspace, path):
            os.makedirs(self.workspace, exist_ok=True)
        return True

    def _hide(self, path: str) -> None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:  # not there (or under a folder covered already)
            return
        if stat.S_ISDIR(mode):
            if self._cover(path, 0o755):
                _set_attributes(path, _ATTR_RDONLY | _ATTR_NOEXEC)
        else:
            # /dev/null, on a mount that allows no device: opening it is refused.
            _mount("/dev/null", path, None, _MS_BIND)
            _set_attributes(path, _ATTR_RDONLY | _ATTR_NOSUID | _ATTR_NODEV | _ATTR_NOEXEC)


def _drop_privileges() -> None:
    """No capability, and no way to get one back (exec of setuid files included)."""
    _prctl(_PR_SET_SECUREBITS, _SECUREBITS, "securebits")
    last = int(open("/proc/sys/kernel/cap_last_cap").read())  # noqa: SIM115
    for cap in range(last + 1):
        _prctl(_PR_CAPBSET_DROP, cap, "drop bounding set")
    _check(_libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient")
    header = _CapHeader(version=_CAPABILITY_VERSION_3, pid=0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
    _prctl(_PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")
    with open("/proc/self/status") as status:
        left = [line for line in status if line.startswith(("CapEff", "CapPrm", "CapBnd"))]
    if any(int(line.split()[1], 16) for line in left):
        raise SetupError("capabilities left after dropping them")


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _fail(error: BaseException) -> NoReturn:
    os.write(2, f"airlock sandbox: {error}\n".encode())
    os._exit(SETUP_FAILED)


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_IGN)


def _command(spec: Spec) -> NoReturn:
    """The command's process: default signal dispositions, no privileges, then the shell."""
    try:
        for signum in signal.valid_signals():
            if signum not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.chdir(spec.workspace)
        _drop_privileges()
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.execve("/bin/sh", ["sh", "-c", spec.command], dict(os.environ))
    except (OSError, SetupError) as error:
        _fail(error)


def _init(spec: Spec, launcher_alive: int, *, own_users: bool) -> NoReturn:
    """PID 1 of the namespace: build the view, run the command, leave when its shell does."""
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
        if select.select([launcher_alive], [], [], 0)[0]:  # the launcher died before that
            os._exit(SETUP_FAILED)
        _prctl(_PR_SET_DUMPABLE, 0, "dumpable")
        _View(spec.workspace, spec.hidden, own_users=own_users).build()
    except (OSError, SetupError) as error:
        _fail(error)
    shell = os.fork()
    if shell == 0:
        _command(spec)
    _ignore_stop_signals()
    while True:  # reap everything; the shell's end is the namespace's end
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(SETUP_FAILED)
        if pid == shell:
            os._exit(_exit_status(status))


def _unshare() -> bool:
    """New namespaces for the launcher's children; whether with a user namespace of their own.

    Root gets PID and mount namespaces as it is; where root may not (no CAP_SYS_ADMIN, as in
    some containers), or airlock is not root, a user namespace that maps only airlock's own
    user gives the rights to build the sandbox, and nothing outside it.
    """
    flags = _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC
    uid, gid = os.geteuid(), os.getegid()  # before: in the new namespace they are unmapped
    if uid == 0 and _libc.unshare(flags) == 0:
        return False
    _check(_libc.unshare(flags | _CLONE_NEWUSER), "unshare")
    _map_user(uid, gid)
    return True


def _refuse_workspace(workspace: str) -> None:
    """A workspace is put back, writable, over everything else: it must hold no system folder."""
    if workspace == "/" or any(_inside(workspace, f) for f in ("/proc", "/sys", "/dev")):
        raise SetupError(f"{workspace} cannot be a workspace: it holds or is a system folder")


def _map_user(uid: int, gid: int) -> None:
    for name, line in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                       ("gid_map", f"{gid} {gid} 1")):  # fmt: skip
        with open(f"/proc/self/{name}", "w") as map_file:
            map_file.write(line)


class Spec:
    """What to run, from the command line: ``PARENT_PID WORKSPACE COMMAND [HIDDEN...]``."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.parent = int(argv[0])
        """Airlock's pid: the launcher's parent, unless airlock died already."""
        self.workspace = argv[1]
        """Where the command runs (absolute, resolved), writable."""
        self.command = argv[2]
        """The shell command line."""
        self.hidden = list(argv[3:])
        """Paths the command must not read (absolute, resolved)."""


def main(argv: list[str]) -> NoReturn:
    """The launcher: namespaces, then wait for their init and exit with its status."""
    spec = Spec(argv[1:])
    try:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
        if os.getppid() != spec.parent:  # airlock died before the line above
            raise SetupError("airlock, which started it, is gone")
        _refuse_workspace(spec.workspace)
        own_users = _unshare()
    except (OSError, SetupError) as error:
        _fail(error)
    alive_read, alive_write = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(alive_write)
        _init(spec, alive_read, own_users=own_users)
    os.close(alive_read)
    _ignore_stop_signals()
    while True:
        try:
            _, status = os.waitpid(init, 0)
        except InterruptedError:
            continue
        os._exit(_exit_status(status))


if __name__ == "__main__":
    if len(sys.argv) < 4:
        os.write(2, b"airlock sandbox: usage: PARENT_PID WORKSPACE COMMAND [HIDDEN...]\n")
        os._exit(SETUP_FAILED)
    main(sys.argv)
