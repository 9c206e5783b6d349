"""Governance: what is done about the numbers (alerts to owners, budgets), above the analyses it reads."""
