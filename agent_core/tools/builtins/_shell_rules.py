"""Which commands destroy what: one rule per command name, each saying why, or None.

A rule sees the arguments of one simple command (quotes removed). Paths outside the
workspace (absolute ones other than ``/tmp``, the home folder, ``..``) and paths that mean
"everything here" (``*``, ``.``) are where a delete, a permission change or a write is
destructive; inside the workspace a single file is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent_core.tools.builtins._shell_words import flags, operands

__all__ = ["DELETERS", "RULES", "Rule", "device_or_outside", "rule_for"]

Rule = Callable[[list[str]], str | None]
"""Why the command with these arguments is destructive, or None."""

DELETERS = frozenset({"rm", "unlink", "shred", "srm", "wipe", "truncate", "rmdir"})
"""Commands that delete what they are given: given a list made at run time (find -exec,
xargs), nobody can foresee what goes."""

_EVERYTHING = re.compile(r"[./*~]+")
_HARMLESS = re.compile(r"/dev/(null|zero|stdout|stderr|stdin|tty|fd/\d+)|/tmp(/.*)?")
_BLOCK_DEVICE = re.compile(
    r"/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|mapper/|md|dm-|loop|sr|nbd|mem|kmem|port)"
)
_HOME_ROOT = re.compile(r"(~[\w-]*|\$\{?HOME\}?)/?\*?")


def _outside(path: str) -> bool:
    """Outside the workspace: an absolute path (but /tmp), the home folder, or up from it."""
    if _HARMLESS.fullmatch(path):
        return False
    return path.startswith(("/", "../", "~", "$HOME", "${HOME}")) or path == ".."


def _everywhere(path: str) -> bool:
    """``path`` names a folder's whole content or more: ``*``, ``.``, ``/``, ``~``, ``../..``."""
    return bool(_EVERYTHING.fullmatch(path)) or bool(_HOME_ROOT.fullmatch(path))


def device_or_outside(path: str) -> bool:
    """Writing to ``path`` overwrites a disk or a file outside the workspace."""
    return bool(_BLOCK_DEVICE.match(path)) or _outside(path)


def _computed(path: str) -> bool:
    return "$" in path or "`" in path


def _rm(args: list[str]) -> str | None:
    given = flags(args)
    if "--no-preserve-root" in given:
        return "deletes with --no-preserve-root"
    if given & {"r", "R", "--recursive"} and given & {"f", "--force"}:
        return "deletes folder trees without asking (rm -rf)"
    targets = operands(args)
    if any(_outside(p) or _everywhere(p) for p in targets):
        return "deletes outside the workspace, the home folder or everything here"
    if any(_computed(p) for p in targets):
        return "deletes paths worked out at run time"
    return None


def _paths(reason: str, *, everything: bool = True) -> Rule:
    """Destructive when any operand is outside the workspace (or, with ``everything``, all
    of a folder)."""

    def rule(args: list[str]) -> str | None:
        hit = any(_outside(p) or (everything and _everywhere(p)) for p in operands(args))
        return reason if hit else None

    return rule


def _destination(reason: str) -> Rule:
    """Destructive when the last operand (where it writes) is a disk or outside."""

    def rule(args: list[str]) -> str | None:
        targets = operands(args)
        return reason if targets and device_or_outside(targets[-1]) else None

    return rule


def _always(reason: str) -> Rule:
    return lambda args: reason


def _any_word(reason: str, *words: str) -> Rule:
    wanted = {w.lower() for w in words}
    return lambda args: reason if wanted & {a.lower() for a in args} else None


def _after(reason: str, first: str, *then: str) -> Rule:
    """Destructive when ``first`` is among the words and one of ``then`` follows it."""

    def rule(args: list[str]) -> str | None:
        lowered = [a.lower() for a in args]
        if first not in lowered:
            return None
        rest = lowered[lowered.index(first) + 1 :]
        return reason if not then or set(then) & set(rest) else None

    return rule


def _first(*rules: Rule) -> Rule:
    def first(args: list[str]) -> str | None:
        for rule in rules:
            reason = rule(args)
            if reason is not None:
                return reason
        return None

    return first


def _has_flag(reason: str, *options: str) -> Rule:
    return lambda args: reason if flags(args) & set(options) else None


def _dd(args: list[str]) -> str | None:
    return "writes raw blocks (dd of=)" if any(a.startswith("of=") for a in args) else None


def _truncate(args: list[str]) -> str | None:
    for index, word in enumerate(args):
        size = word.removeprefix("--size=").removeprefix("-s") if word != "-s" else ""
        if word in ("-s", "--size") and index + 1 < len(args):
            size = args[index + 1]
        if word.startswith(("-s", "--size")) and size and size[0] in "0-<":
            return "empties or shrinks files (truncate -s 0)"
    return None


def _kill(args: list[str]) -> str | None:
    rest = args
    if rest and rest[0] in ("-s", "-n"):
        rest = rest[2:]
    elif rest and rest[0].startswith("-") and rest[0] != "--":
        rest = rest[1:]
    targets = [w for w in rest if w != "--"]
    return "kills every process (kill -1) or init" if {"-1", "1"} & set(targets) else None


def _git(args: list[str]) -> str | None:
    words = _git_subcommand(args)
    if not words:
        return None
    rule = _GIT.get(words[0].lower())
    return rule(words[1:]) if rule is not None else None


def _git_subcommand(args: list[str]) -> list[str]:
    """``git``'s arguments from the subcommand on (global options such as -C dir skipped)."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in ("-C", "-c", "--git-dir", "--work-tree") else 1
    return args[index:]


def _git_push(args: list[str]) -> str | None:
    given = flags(args)
    forced = {"f", "d", "--force", "--force-with-lease", "--force-if-includes", "--mirror",
              "--delete", "--prune"}  # fmt: skip
    if given & forced or any(w.startswith(("+", ":")) for w in operands(args)):
        return "rewrites or deletes remote history (git push --force / --delete)"
    return None


def _git_clean(args: list[str]) -> str | None:
    given = flags(args)
    if given & {"f", "--force"} and not given & {"n", "--dry-run"}:
        return "deletes untracked files (git clean -f)"
    return None


def _git_discard(args: list[str]) -> str | None:
    if flags(args) & {"f", "--force"} or {".", ":/", "*"} & set(operands(args)):
        return "throws away uncommitted changes"
    return None


_GIT: dict[str, Rule] = {
    "push": _git_push,
    "reset": _has_flag("throws away commits and changes (git reset --hard)", "--hard"),
    "clean": _git_clean,
    "branch": _has_flag("deletes unmerged branches (git branch -D)", "D"),
    "checkout": _git_discard,
    "restore": _git_discard,
    "filter-branch": _always("rewrites history"),
    "filter-repo": _always("rewrites history"),
    "reflog": _any_word("expires the reflog", "expire", "delete"),
    "update-ref": _has_flag("deletes a ref", "d"),
    "stash": _any_word("drops stashed changes", "clear", "drop"),
}

_DOCKER = _first(
    _after("prunes containers, images or volumes", "system", "prune"),
    _after("deletes volumes", "volume", "prune", "rm"),
    _after("prunes", "container", "prune"),
    _after("prunes", "network", "prune"),
    _after("prunes", "builder", "prune"),
    lambda args: (
        "deletes every unused image" if "prune" in args and flags(args) & {"a", "--all"} else None
    ),
    lambda args: (
        "deletes volumes (down -v)"
        if "down" in args and flags(args) & {"v", "--volumes", "--rmi"}
        else None
    ),
)


def _aws(args: list[str]) -> str | None:
    lowered = [a.lower() for a in args]
    if any(w.startswith(("delete-", "terminate-", "deregister-", "purge-")) for w in lowered):
        return "deletes cloud resources"
    if "s3" in lowered and ("rb" in lowered or ("rm" in lowered and "--recursive" in lowered)):
        return "deletes buckets or their content"
    return None


def _iptables(args: list[str]) -> str | None:
    given = flags(args)
    if given & {"F", "X", "--flush", "--delete-chain"}:
        return "flushes the firewall"
    if "P" in given and {"DROP", "REJECT"} & {a.upper() for a in args}:
        return "drops all traffic by default"
    return None


_SYSTEMCTL_STOPS = (
    "stop", "disable", "mask", "kill", "isolate", "poweroff", "reboot", "halt", "rescue",
    "emergency", "kexec", "soft-reboot", "suspend", "hibernate",
)  # fmt: skip
_SQL_DROP = "drops a database"
_PACKAGES = _any_word("removes packages", "remove", "purge", "autoremove", "erase", "-r", "-rns")

RULES: dict[str, Rule] = {
    "rm": _rm,
    "shred": _always("overwrites files beyond recovery (shred)"),
    "srm": _always("overwrites files beyond recovery"),
    "wipe": _always("overwrites files beyond recovery"),
    "wipefs": _always("wipes file-system signatures (wipefs)"),
    "blkdiscard": _always("discards a whole disk"),
    "mkswap": _always("formats a disk (mkswap)"),
    "mke2fs": _always("formats a disk"),
    "mkdosfs": _always("formats a disk"),
    "mkntfs": _always("formats a disk"),
    "fdformat": _always("formats a disk"),
    "sgdisk": _always("rewrites a partition table"),
    "sfdisk": lambda a: None if flags(a) & {"l", "d", "--list", "--dump"} else "partitions a disk",
    "fdisk": lambda a: None if flags(a) & {"l", "--list"} else "partitions a disk",
    "gdisk": lambda a: None if flags(a) & {"l"} else "partitions a disk",
    "parted": _any_word("changes partitions", "rm", "mklabel", "mktable", "mkpart", "resizepart"),
    "cryptsetup": _any_word("destroys encryption keys", "luksformat", "erase", "lukserase"),
    "lvremove": _always("deletes logical volumes"),
    "vgremove": _always("deletes volume groups"),
    "pvremove": _always("deletes physical volumes"),
    "zpool": _any_word("destroys a pool", "destroy", "labelclear"),
    "zfs": _any_word("destroys datasets", "destroy"),
    "btrfs": _after("deletes subvolumes", "subvolume", "delete"),
    "mdadm": _has_flag("wipes RAID metadata", "--zero-superblock"),
    "hdparm": _has_flag("erases a disk", "--security-erase", "--security-erase-enhanced"),
    "nvme": _any_word("erases a disk", "format", "sanitize"),
    "badblocks": _has_flag("overwrites a disk", "w"),
    "dd": _dd,
    "truncate": _truncate,
    "find": lambda a: "deletes what it finds (find -delete)" if "-delete" in a else None,
    "chmod": _paths("changes permissions outside the workspace or of everything"),
    "chown": _paths("changes owners outside the workspace or of everything"),
    "chgrp": _paths("changes groups outside the workspace or of everything"),
    "setfacl": _paths("changes permissions outside the workspace or of everything"),
    "chattr": _paths("changes file attributes outside the workspace"),
    "mv": lambda a: (
        "moves files into /dev/null"
        if "/dev/null" in operands(a)
        else _paths("moves files outside the workspace or everything")(a)
    ),
    "cp": _destination("overwrites files outside the workspace or a disk"),
    "install": _destination("overwrites files outside the workspace"),
    "ln": _destination("replaces files outside the workspace"),
    "tee": _paths("overwrites files outside the workspace or a disk", everything=False),
    "unlink": _paths("deletes files outside the workspace"),
    "rsync": lambda a: (
        "deletes what the source lacks (rsync --delete)"
        if any(w.startswith("--delete") for w in a)
        else _destination("overwrites files outside the workspace")(a)
    ),
    "sed": lambda a: (
        _paths("edits files outside the workspace in place", everything=False)(a)
        if flags(a) & {"i", "--in-place"}
        else None
    ),
    "git": _git,
    "kubectl": _first(
        _any_word("deletes cluster resources", "delete", "drain"),
        _has_flag("prunes cluster resources", "--prune"),
    ),
    "oc": _any_word("deletes cluster resources", "delete", "drain"),
    "helm": _any_word("uninstalls a release", "uninstall", "delete", "del", "un"),
    "terraform": _first(
        _any_word("destroys infrastructure", "destroy", "-destroy", "--destroy"),
        _after("drops resources from state", "state", "rm"),
    ),
    "tofu": _any_word("destroys infrastructure", "destroy", "-destroy"),
    "terragrunt": _any_word("destroys infrastructure", "destroy", "-destroy"),
    "pulumi": _first(
        _any_word("destroys infrastructure", "destroy"), _after("deletes a stack", "stack", "rm")
    ),
    "cdk": _any_word("destroys a stack", "destroy"),
    "sls": _any_word("removes a deployment", "remove"),
    "serverless": _any_word("removes a deployment", "remove"),
    "docker": _DOCKER,
    "podman": _DOCKER,
    "nerdctl": _DOCKER,
    "docker-compose": _DOCKER,
    "aws": _aws,
    "gcloud": _any_word("deletes cloud resources", "delete"),
    "az": _any_word("deletes cloud resources", "delete"),
    "doctl": _any_word("deletes cloud resources", "delete", "rm"),
    "gsutil": _first(
        _any_word("deletes buckets", "rb"),
        lambda a: (
            "deletes objects recursively" if "rm" in a and flags(a) & {"r", "R", "a"} else None
        ),
    ),
    "gh": _any_word("deletes on GitHub", "delete"),
    "redis-cli": _any_word("empties Redis (FLUSHALL)", "flushall", "flushdb"),
    "dropdb": _always(_SQL_DROP),
    "dropuser": _always("drops a database role"),
    "mysqladmin": _any_word(_SQL_DROP, "drop"),
    "crontab": _has_flag("deletes the crontab (crontab -r)", "r"),
    "iptables": _iptables,
    "ip6tables": _iptables,
    "iptables-legacy": _iptables,
    "iptables-nft": _iptables,
    "nft": _any_word("flushes the firewall", "flush", "delete"),
    "ufw": _any_word("turns the firewall off", "disable", "reset"),
    "systemctl": _any_word("stops services or the machine", *_SYSTEMCTL_STOPS),
    "service": lambda a: "stops a service" if len(a) > 1 and a[1].lower() == "stop" else None,
    "kill": _kill,
    "killall5": _always("kills every process"),
    "shutdown": _always("shuts the machine down"),
    "reboot": _always("reboots the machine"),
    "poweroff": _always("powers the machine off"),
    "halt": _always("halts the machine"),
    "init": _any_word("changes the run level", "0", "6", "1", "s"),
    "telinit": _any_word("changes the run level", "0", "6", "1", "s"),
    "userdel": _always("deletes users"),
    "deluser": _always("deletes users"),
    "groupdel": _always("deletes groups"),
    "apt": _PACKAGES,
    "apt-get": _PACKAGES,
    "yum": _PACKAGES,
    "dnf": _PACKAGES,
    "zypper": _PACKAGES,
    "pacman": _PACKAGES,
}
"""Destructive-command rules by command name (lower case, no folder)."""


def rule_for(name: str) -> Rule | None:
    """The rule for command ``name``; every ``mkfs.*`` formats a disk."""
    if name.startswith("mkfs"):
        return _always("formats a disk (mkfs)")
    return RULES.get(name)
