"""Waste detection: rules (one file each in ``rules/``) that turn the store into priced findings.

The rule registry is ``registry`` here (``engine.rules``): the name ``aifinops.waste.rules`` is the package of
built-in rules, which importing it binds on this package.
"""

from .engine import Finding, Rule, RuleContext, RuleError, RunResult, Skipped, reconcile, run
from .engine import rules as registry

__all__ = ["Finding", "Rule", "RuleContext", "RuleError", "RunResult", "Skipped", "reconcile", "registry", "run"]
