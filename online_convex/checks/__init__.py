"""Regret-theorem checks run through the OCO simulator; see memopt_theory.verify. Each module defines CHECKS."""
