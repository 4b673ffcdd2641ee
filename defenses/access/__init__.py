"""Access control at inference time: policy, tokens, budgets, output hardening, GuardedModel."""

from guard.defenses.access.budget import BudgetLedger, Charge
from guard.defenses.access.guarded import (
    AccessDenied,
    Answer,
    BudgetExceeded,
    GuardedModel,
    InputRejected,
    Refused,
)
from guard.defenses.access.output import harden
from guard.defenses.access.policy import (
    PERMISSIONS,
    AccessPolicy,
    Budget,
    OutputRule,
    Principal,
    ReverseSigmoid,
    Role,
)
from guard.defenses.access.tokens import TokenInfo, TokenStore

__all__ = [
    "PERMISSIONS", "AccessDenied", "AccessPolicy", "Answer", "Budget", "BudgetExceeded",
    "BudgetLedger", "Charge", "GuardedModel", "InputRejected", "OutputRule", "Principal",
    "Refused", "ReverseSigmoid", "Role", "TokenInfo", "TokenStore", "harden",
]
