"""online_convex — the OCO simulator: problems, streams, domains, learners, certified regret, sweeps."""
