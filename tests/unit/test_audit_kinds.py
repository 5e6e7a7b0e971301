"""Every kind of audit event airlock writes is one named value, and docs/security.md lists them."""

from __future__ import annotations

import re
from pathlib import Path

from agent_core.models import AuditKind

SECURITY = Path(__file__).parents[2] / "docs" / "security.md"


def test_the_docs_list_exactly_the_kinds_airlock_writes() -> None:
    text = SECURITY.read_text()
    section = text[
        text.index("- **The kinds of event**") : text.index("- `airlock audit show RUN`")
    ]
    listed = set(re.findall(r"`([a-z]+(?:_[a-z]+)+|halt|resume)`", section))
    assert listed == {kind.value for kind in AuditKind}


def test_no_kind_is_compared_as_a_bare_string() -> None:
    """Writing one is a type error (``Audit.record`` takes an AuditKind); reading one by its
    text would keep working after a rename and silently match nothing."""
    root = Path(__file__).parents[2]
    bare = re.compile(r"\.kind (?:==|!=) \"(?:{})\"".format("|".join(AuditKind)))
    for path in [*root.glob("agent_core/**/*.py"), *root.glob("bot/**/*.py")]:
        assert not bare.search(path.read_text()), path
