"""airlock's agent core: runs goals with tools, and asks humans before anything risky.

It knows nothing about Slack; it reaches people through an operator channel.
"""

from agent_core.config import Settings
from agent_core.errors import AirlockError, ConfigError
from agent_core.models import Approval, Decision, Plan, RiskLevel, Run, RunStatus, Subtask
from agent_core.store import Store, open_store

__all__ = [
    "AirlockError",
    "Approval",
    "ConfigError",
    "Decision",
    "Plan",
    "RiskLevel",
    "Run",
    "RunStatus",
    "Settings",
    "Store",
    "Subtask",
    "open_store",
]
