"""Human approval: policy, who may decide, the decision path, and the risk gate."""

from agent_core.approvals.authority import LOCAL_PREFIX, Authority, local_identity
from agent_core.approvals.gate import (
    Allowed,
    ApprovalGate,
    Denied,
    Gate,
    Pending,
    Verdict,
    approval_id,
)
from agent_core.approvals.policy import ApprovalPolicy
from agent_core.approvals.risk import CallRisk, RiskPolicy, RiskReason, contains_secret
from agent_core.approvals.service import (
    DecisionService,
    Refused,
    edit_risk_check,
    schema_edit_check,
)
from agent_core.approvals.settle import close_undecided, close_with_run

__all__ = [
    "LOCAL_PREFIX",
    "Allowed",
    "ApprovalGate",
    "ApprovalPolicy",
    "Authority",
    "CallRisk",
    "DecisionService",
    "Denied",
    "Gate",
    "Pending",
    "Refused",
    "RiskPolicy",
    "RiskReason",
    "Verdict",
    "approval_id",
    "close_undecided",
    "close_with_run",
    "contains_secret",
    "edit_risk_check",
    "local_identity",
    "schema_edit_check",
]
