"""Waste detection: rules (one file each in ``rules/``) that turn the store into priced findings."""

from .engine import Finding, Rule, RuleContext, RuleError, RunResult, Skipped, reconcile, rules, run

__all__ = ["Finding", "Rule", "RuleContext", "RuleError", "RunResult", "Skipped", "reconcile", "rules", "run"]
