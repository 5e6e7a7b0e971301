"""Which commands destroy what: one rule per command name, each saying why, or None.

A rule sees the arguments of one simple command (quotes removed). Paths outside the
workspace (absolute ones other than ``/tmp``, the home folder, ``..``) and paths that mean
"everything here" (``*``, ``.``) are where a delete, a permission change or a write is
destructive; inside the workspace a single file is not.
"""

from __future__ import annotations

import re

from agent_core.tools.builtins._shell_rule_kit import (
    Rule,
    after,
    always,
    any_word,
    computed,
    destination,
    device_or_outside,
    everywhere,
    first_of,
    has_flag,
    outside,
    paths,
)
from agent_core.tools.builtins._shell_words import flags, operands

__all__ = ["DELETERS", "RULES", "Rule", "device_or_outside", "outside", "rule_for"]


DELETERS = frozenset({"rm", "unlink", "shred", "srm", "wipe", "truncate", "rmdir"})
"""Commands that delete what they are given: given a list made at run time (find -exec,
xargs), nobody can foresee what goes."""


def _rm(args: list[str]) -> str | None:
    given = flags(args)
    if "--no-preserve-root" in given:
        return "deletes with --no-preserve-root"
    if given & {"r", "R", "--recursive"} and given & {"f", "--force"}:
        return "deletes folder trees without asking (rm -rf)"
    targets = operands(args)
    if any(outside(p) or everywhere(p) for p in targets):
        return "deletes outside the workspace, the home folder or everything here"
    if any(computed(p) for p in targets):
        return "deletes paths worked out at run time"
    return None


_KNOWN = frozenset({
    "sh", "bash", "zsh", "dash", "ksh", "python", "python3", "perl", "ruby", "node", "php",
    "busybox", "env", "sudo", "xargs", "find", "eval",
})  # fmt: skip


def _renames(args: list[str]) -> str | None:
    """A command binary copied, linked or moved under another name hides what runs later."""
    for path in operands(args)[:-1]:
        name = path.rsplit("/", 1)[-1].lower()
        if "/" in path and (name in _KNOWN or name in RULES or name.startswith("mkfs")):
            return "puts a command under another name, hiding what runs"
    return None


_SED_RUNS = re.compile(r"(^|[;\n{])\s*e(\s|$)|^s(.).*\3.*\3[a-z0-9]*e[a-z0-9]*$")


def _sed_runs(args: list[str]) -> str | None:
    """GNU sed runs shell commands with its ``e`` command and the ``s///e`` flag."""
    scripts = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-e", "--expression")]
    given = operands(args)
    scripts += given[:1] if not scripts else []
    if any(_SED_RUNS.search(text.strip()) for text in scripts):
        return "runs shell commands from sed (e)"
    return None


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
    "reset": has_flag("throws away commits and changes (git reset --hard)", "--hard"),
    "clean": _git_clean,
    "branch": has_flag("deletes unmerged branches (git branch -D)", "D"),
    "checkout": _git_discard,
    "restore": _git_discard,
    "filter-branch": always("rewrites history"),
    "filter-repo": always("rewrites history"),
    "reflog": any_word("expires the reflog", "expire", "delete"),
    "update-ref": has_flag("deletes a ref", "d"),
    "stash": any_word("drops stashed changes", "clear", "drop"),
    "rm": _rm,
}

_DOCKER = first_of(
    after("prunes containers, images or volumes", "system", "prune"),
    after("deletes volumes", "volume", "prune", "rm"),
    after("prunes", "container", "prune"),
    after("prunes", "network", "prune"),
    after("prunes", "builder", "prune"),
    lambda args: (
        "deletes every unused image" if "prune" in args and flags(args) & {"a", "--all"} else None
    ),
    lambda args: (
        "deletes volumes (down -v)"
        if "down" in args and flags(args) & {"v", "--volumes", "--rmi"}
        else None
    ),
    lambda args: (
        "removes containers or images listed at run time"
        if {"rm", "rmi"} & set(args) and any(computed(a) for a in operands(args))
        else None
    ),
)


def _aws(args: list[str]) -> str | None:
    lowered = [a.lower() for a in args]
    if any(w.startswith(("delete-", "terminate-", "deregister-", "purge-")) for w in lowered):
        return "deletes cloud resources"
    if "s3" in lowered and ("rb" in lowered or ("rm" in lowered and "--recursive" in lowered)):
        return "deletes buckets or their content"
    if "--delete" in lowered:
        return "deletes what the source lacks (sync --delete)"
    return None


def _kill_all(args: list[str]) -> str | None:
    """pkill and killall of all of a user's processes, or of any name at all."""
    if flags(args) & {"u", "--user"} or {".", ".*", "^"} & set(operands(args)):
        return "kills every process of a user, or of any name"
    return None


def _link_down(args: list[str]) -> str | None:
    lowered = [a.lower() for a in args]
    return "takes a network interface down" if "down" in lowered else None


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
_PACKAGES = any_word("removes packages", "remove", "purge", "autoremove", "erase", "-r", "-rns")

RULES: dict[str, Rule] = {
    "rm": _rm,
    "shred": always("overwrites files beyond recovery (shred)"),
    "srm": always("overwrites files beyond recovery"),
    "wipe": always("overwrites files beyond recovery"),
    "wipefs": always("wipes file-system signatures (wipefs)"),
    "blkdiscard": always("discards a whole disk"),
    "mkswap": always("formats a disk (mkswap)"),
    "mke2fs": always("formats a disk"),
    "mkdosfs": always("formats a disk"),
    "mkntfs": always("formats a disk"),
    "fdformat": always("formats a disk"),
    "sgdisk": always("rewrites a partition table"),
    "sfdisk": lambda a: None if flags(a) & {"l", "d", "--list", "--dump"} else "partitions a disk",
    "fdisk": lambda a: None if flags(a) & {"l", "--list"} else "partitions a disk",
    "gdisk": lambda a: None if flags(a) & {"l"} else "partitions a disk",
    "parted": any_word("changes partitions", "rm", "mklabel", "mktable", "mkpart", "resizepart"),
    "cryptsetup": any_word("destroys encryption keys", "luksformat", "erase", "lukserase"),
    "lvremove": always("deletes logical volumes"),
    "vgremove": always("deletes volume groups"),
    "pvremove": always("deletes physical volumes"),
    "zpool": any_word("destroys a pool", "destroy", "labelclear"),
    "zfs": any_word("destroys datasets", "destroy"),
    "btrfs": after("deletes subvolumes", "subvolume", "delete"),
    "mdadm": has_flag("wipes RAID metadata", "--zero-superblock"),
    "hdparm": has_flag("erases a disk", "--security-erase", "--security-erase-enhanced"),
    "nvme": any_word("erases a disk", "format", "sanitize"),
    "badblocks": has_flag("overwrites a disk", "w"),
    "dd": _dd,
    "truncate": _truncate,
    "find": lambda a: "deletes what it finds (find -delete)" if "-delete" in a else None,
    "chmod": paths("changes permissions outside the workspace or of everything"),
    "chown": paths("changes owners outside the workspace or of everything"),
    "chgrp": paths("changes groups outside the workspace or of everything"),
    "setfacl": paths("changes permissions outside the workspace or of everything"),
    "chattr": paths("changes file attributes outside the workspace"),
    "mv": first_of(
        lambda a: "moves files into /dev/null" if "/dev/null" in operands(a) else None,
        paths("moves files outside the workspace or everything"),
        lambda a: _renames(a),
    ),
    "cp": first_of(
        destination("overwrites files outside the workspace or a disk"), lambda a: _renames(a)
    ),
    "install": first_of(
        destination("overwrites files outside the workspace"), lambda a: _renames(a)
    ),
    "ln": first_of(destination("replaces files outside the workspace"), lambda a: _renames(a)),
    "tee": paths("overwrites files outside the workspace or a disk", everything=False),
    "unlink": paths("deletes files outside the workspace"),
    "rsync": lambda a: (
        "deletes what the source lacks (rsync --delete)"
        if any(w.startswith("--delete") for w in a)
        else destination("overwrites files outside the workspace")(a)
    ),
    "sed": first_of(
        lambda a: (
            paths("edits files outside the workspace in place", everything=False)(a)
            if flags(a) & {"i", "--in-place"}
            else None
        ),
        lambda a: _sed_runs(a),
    ),
    "git": _git,
    "kubectl": first_of(
        any_word("deletes cluster resources", "delete", "drain"),
        has_flag("prunes cluster resources", "--prune"),
    ),
    "oc": any_word("deletes cluster resources", "delete", "drain"),
    "helm": any_word("uninstalls a release", "uninstall", "delete", "del", "un"),
    "terraform": first_of(
        any_word("destroys infrastructure", "destroy", "-destroy", "--destroy"),
        after("drops resources from state", "state", "rm"),
    ),
    "tofu": any_word("destroys infrastructure", "destroy", "-destroy"),
    "terragrunt": any_word("destroys infrastructure", "destroy", "-destroy"),
    "pulumi": first_of(
        any_word("destroys infrastructure", "destroy"), after("deletes a stack", "stack", "rm")
    ),
    "cdk": any_word("destroys a stack", "destroy"),
    "sls": any_word("removes a deployment", "remove"),
    "serverless": any_word("removes a deployment", "remove"),
    "docker": _DOCKER,
    "podman": _DOCKER,
    "nerdctl": _DOCKER,
    "docker-compose": _DOCKER,
    "aws": _aws,
    "gcloud": any_word("deletes cloud resources", "delete"),
    "az": any_word("deletes cloud resources", "delete"),
    "doctl": any_word("deletes cloud resources", "delete", "rm"),
    "gsutil": first_of(
        any_word("deletes buckets", "rb"),
        lambda a: (
            "deletes objects recursively" if "rm" in a and flags(a) & {"r", "R", "a"} else None
        ),
    ),
    "gh": any_word("deletes on GitHub", "delete"),
    "redis-cli": any_word("empties Redis (FLUSHALL)", "flushall", "flushdb"),
    "dropdb": always(_SQL_DROP),
    "dropuser": always("drops a database role"),
    "mysqladmin": any_word(_SQL_DROP, "drop"),
    "crontab": has_flag("deletes the crontab (crontab -r)", "r"),
    "iptables": _iptables,
    "ip6tables": _iptables,
    "iptables-legacy": _iptables,
    "iptables-nft": _iptables,
    "nft": any_word("flushes the firewall", "flush", "delete"),
    "ufw": any_word("turns the firewall off", "disable", "reset"),
    "systemctl": any_word("stops services or the machine", *_SYSTEMCTL_STOPS),
    "service": lambda a: "stops a service" if len(a) > 1 and a[1].lower() == "stop" else None,
    "kill": _kill,
    "killall5": always("kills every process"),
    "pkill": _kill_all,
    "killall": _kill_all,
    "ip": _link_down,
    "ifconfig": _link_down,
    "ifdown": always("takes a network interface down"),
    "shutdown": always("shuts the machine down"),
    "reboot": always("reboots the machine"),
    "poweroff": always("powers the machine off"),
    "halt": always("halts the machine"),
    "init": any_word("changes the run level", "0", "6", "1", "s"),
    "telinit": any_word("changes the run level", "0", "6", "1", "s"),
    "userdel": always("deletes users"),
    "deluser": always("deletes users"),
    "groupdel": always("deletes groups"),
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
        return always("formats a disk (mkfs)")
    return RULES.get(name)
