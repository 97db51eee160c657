"""Theorem checks of the math core (sketches, bounds); see memopt_theory.verify. Each module defines CHECKS."""
