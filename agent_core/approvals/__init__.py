"""Human approval: policy, who may decide, the decision path, and the risk gate."""

from agent_core.approvals.authority import LOCAL_PREFIX, Authority, local_identity
from agent_core.approvals.gate import Allowed, ApprovalGate, Denied, Gate, Verdict, approval_id
from agent_core.approvals.policy import ApprovalPolicy
from agent_core.approvals.service import DecisionService, Refused, schema_edit_check

__all__ = [
    "LOCAL_PREFIX",
    "Allowed",
    "ApprovalGate",
    "ApprovalPolicy",
    "Authority",
    "DecisionService",
    "Denied",
    "Gate",
    "Refused",
    "Verdict",
    "approval_id",
    "local_identity",
    "schema_edit_check",
]
