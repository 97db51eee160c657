"""online_convex — the OCO simulator: problems, streams, domains, learners, certified regret, sweeps.

>>> from online_convex import Learner, make_domain, make_stream, run
>>> data, problem = make_stream("low_rank_noise", shape=(4,), T=20, seeds=2, rank=2)
>>> trace = run(Learner("adagrad_full", domain=make_domain("l2_ball", (4,), radius=1.0)), problem, data)
>>> bool((trace.linear_regret_upper <= trace.bound).all())
True
"""

from online_convex import domains, problems, streams
from online_convex.comparator import ComparatorResult, best_fixed_point
from online_convex.domains import Domain, make_domain
from online_convex.learners import Learner, gradient_bound
from online_convex.problems import Problem, RoundData, get_problem
from online_convex.simulate import RegretTrace, comparator_bounds, geometric_checkpoints, run
from online_convex.streams import make_stream, stream_names

__all__ = [
    # learners and the simulator
    "Learner",
    "run",
    "RegretTrace",
    "geometric_checkpoints",
    "gradient_bound",
    # the comparator (best fixed point in hindsight, certified)
    "best_fixed_point",
    "comparator_bounds",
    "ComparatorResult",
    # domains (registry: domains.get / domains.names)
    "domains",
    "Domain",
    "make_domain",
    # losses (registry: problems.get / problems.names)
    "problems",
    "Problem",
    "RoundData",
    "get_problem",
    # streams (registry: streams.get / streams.names)
    "streams",
    "make_stream",
    "stream_names",
]
