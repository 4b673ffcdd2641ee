"""Guard: security and robustness testing for machine-learning models.

Attacks probe a model and return Evidence; policies turn Evidence into Findings;
reports render an AuditResult. See DESIGN.md for the flow.
"""

__version__ = "0.1.0"

from guard.levels import SEVERITY_ORDER

__all__ = ["SEVERITY_ORDER", "__version__"]
