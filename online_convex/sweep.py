r"""Sweeps: one run = one :class:`RunSpec`; :func:`run_one` runs it; :func:`sweep` maps it over an executor.

A :class:`RunSpec` names everything a run depends on — method and its Config, stream (+ parameters), loss,
domain (+ parameters), horizon T, number of seeds, the seed entropy, the step size η and the checkpoints —
so that its content hash is a sound key for the result store (:mod:`online_convex.results`): two specs with
the same hash give the same numbers. The hash covers ``SPEC_VERSION``; bump it whenever the meaning of a
field or what :func:`run_one` computes from it changes, and old result directories are refused, not mixed in.

:func:`sweep` takes any :class:`concurrent.futures.Executor`: by default a local process pool whose workers
run torch and BLAS on one thread each; on a cluster a Dask client (``distributed.Client(address)``, or its
``get_executor()``). :func:`run_one` does not know which engine runs it, and every seed's data come from
``numpy.random.SeedSequence(entropy).spawn(seeds)`` inside the stream, so the numbers are the same whatever
the executor and the number of workers (tests/oco/test_sweep.py).

Torch is imported lazily so that pool workers can pin their thread counts before it loads.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SPEC_VERSION", "RunSpec", "run_one", "sweep", "SweepReport", "local_executor"]

SPEC_VERSION = 1  # bump when a field's meaning or run_one's computation changes (old result dirs are refused)

_SCALARS = (bool, int, float, str, type(None))
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _freeze(value: Any, *, where: str) -> Any:
    """A JSON-able value in hashable form: lists become tuples; mappings become sorted (key, value) tuples."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: values must be finite; got {value!r}")
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, where=where) for v in value)
    raise TypeError(
        f"{where}: values must be bool, int, float, str, None or lists of them; got {value!r} ({type(value).__name__})"
    )


def _freeze_params(params: Any, *, where: str) -> tuple[tuple[str, Any], ...]:
    if params is None:
        return ()
    if isinstance(params, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in params):
        params = dict(params)
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{where} must be a mapping of name -> value; got {params!r} ({type(params).__name__})"
        )
    for k in params:
        if not isinstance(k, str):
            raise TypeError(f"{where}: keys must be str; got {k!r}")
    return tuple(sorted((k, _freeze(v, where=f"{where}[{k!r}]")) for k, v in params.items()))


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _as_config_value(value: Any) -> Any:
    """Config fields that are tuples (mode sizes, betas) get tuples back from JSON lists."""
    return tuple(_as_config_value(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    """One OCO run over ``seeds`` independent seeds: everything its numbers depend on.

    Parameters
    ----------
    method : str            registered method name (``memopt_theory.methods.names()``)
    config : mapping        keyword arguments of the method's Config; stored with every default filled in,
                            so ``{}`` and the explicit defaults are the same spec (same hash)
    stream : str            ``online_convex.streams.make_stream`` name
    stream_params : mapping extra keyword arguments of ``make_stream`` (e.g. ``alpha`` of a power law)
    shape : tuple of int or None   parameter shape S, (d,) or (m, n); None for a real data set: its
                            features + 1 (a bias column)
    problem : str or None   loss family, passed to the stream (which draws labels for it); None = the
                            stream's default loss
    domain : str            ``online_convex.domains.make_domain`` name; ``domain_params`` its keyword arguments
    T : int                 rounds, ≥ 1
    seeds : int             independent runs (the batch axis), ≥ 1
    entropy : int           root of ``numpy.random.SeedSequence(entropy).spawn(seeds)``, ≥ 0
    eta : float or "theory" step size η > 0, or the theorem's step size
    checkpoints : int       about this many checkpoints, geometric in [1, T] with T included
                            (``online_convex.simulate.geometric_checkpoints``)
    """

    method: str
    config: Any = ()
    stream: str
    stream_params: Any = ()
    shape: tuple[int, ...] | None = None
    problem: str | None = None
    domain: str = "unconstrained"
    domain_params: Any = ()
    T: int
    seeds: int = 1
    entropy: int = 0
    eta: float | str = "theory"
    checkpoints: int = 20

    def __post_init__(self) -> None:
        from memopt_theory import methods
        from memopt_theory.validation import check_int, check_real, check_shape

        w = "RunSpec"
        for name in ("method", "stream", "domain"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{w}: {name} must be a str; got {getattr(self, name)!r}")
        if self.problem is not None and not isinstance(self.problem, str):
            raise TypeError(f"{w}: problem must be a str or None; got {self.problem!r}")
        m = methods.get(self.method)  # unknown name: ValueError listing the registered ones
        cfg = dict(_freeze_params(self.config, where=f"{w}: config"))
        try:
            config = m.Config(**{k: _as_config_value(v) for k, v in cfg.items()})
        except TypeError as e:  # unknown field names surface as TypeError from the dataclass __init__
            fields = ", ".join(f.name for f in dataclasses.fields(m.Config))
            raise ValueError(
                f"{w}: config {cfg!r} is not valid for method {self.method!r} ({e}); fields: {fields}"
            ) from None
        values = dict(_freeze_params(dataclasses.asdict(config), where=f"{w}: config of {self.method!r}"))
        for f in dataclasses.fields(config):  # 1 and 1.0 are one value of a float field: one key
            if f.type in ("float", float) and type(values[f.name]) is int:
                values[f.name] = float(values[f.name])
        full = tuple(sorted(values.items()))
        object.__setattr__(self, "config", full)
        object.__setattr__(
            self, "stream_params", _freeze_params(self.stream_params, where=f"{w}: stream_params")
        )
        object.__setattr__(
            self, "domain_params", _freeze_params(self.domain_params, where=f"{w}: domain_params")
        )
        if "problem" in dict(self.stream_params):
            raise ValueError(
                f"{w}: stream_params may not hold 'problem'; set RunSpec.problem instead (one place, one hash)"
            )
        if isinstance(self.shape, list):
            object.__setattr__(self, "shape", tuple(self.shape))
        if self.shape is not None:
            check_shape(self.shape, where=f"{w}: shape", min_ndim=1)
        check_int(self.T, "T", where=w, low=1)
        check_int(self.seeds, "seeds", where=w, low=1)
        check_int(self.entropy, "entropy", where=w, low=0)
        check_int(self.checkpoints, "checkpoints", where=w, low=1)
        if self.eta != "theory":
            if isinstance(self.eta, str):
                raise ValueError(f"{w}: eta must be a real > 0 or 'theory'; got {self.eta!r}")
            check_real(self.eta, "eta", where=w, low=0.0, low_open=True)
            object.__setattr__(self, "eta", float(self.eta))  # eta = 1 and 1.0: one spec, one key
        _check_names(self)

    # --- views -------------------------------------------------------------------------------------
    def method_config(self) -> Any:
        """The method's validated Config object."""
        from memopt_theory import methods

        return methods.get(self.method).Config(**{k: _as_config_value(v) for k, v in self.config})

    @property
    def label(self) -> str:
        """``method(field=value, …)`` with every Config field: one label per distinct method and Config."""
        return f"{self.method}({', '.join(f'{k}={_thaw(v)!r}' for k, v in self.config)})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists for tuples); ``RunSpec.from_dict`` inverts it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("config", "stream_params", "domain_params"):
                v = {k: _thaw(x) for k, x in v}
            out[f.name] = _thaw(v)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSpec:
        if not isinstance(d, Mapping):
            raise TypeError(f"RunSpec.from_dict: expected a mapping; got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"RunSpec.from_dict: unknown fields {unknown}; allowed: {', '.join(sorted(names))}"
            )
        return cls(**d)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the text the hash is taken of."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        return cls.from_dict(json.loads(text))

    @property
    def key(self) -> str:
        """Stable content hash: sha256 of SPEC_VERSION and the canonical JSON, 20 hex digits (80 bits)."""
        return spec_key(self.to_dict())


def spec_key(spec_dict: Mapping[str, Any], version: int = SPEC_VERSION) -> str:
    text = json.dumps({"spec_version": version, "spec": spec_dict}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _check_names(spec: RunSpec) -> None:
    """Problem, domain and stream names and the stream's parameter names are checked at construction, not
    when a worker reaches the run."""
    from online_convex import domains, problems, streams

    if spec.stream not in streams.stream_names():
        raise ValueError(
            f"RunSpec: unknown stream {spec.stream!r}; known: {', '.join(streams.stream_names())}"
        )
    unknown = sorted(set(dict(spec.stream_params)) - set(streams.stream_params(spec.stream)))
    if unknown:  # a misspelt parameter would otherwise surface only in a worker, mid-sweep
        allowed = [
            p for p in streams.stream_params(spec.stream) if p != "problem"
        ]  # RunSpec.problem holds it
        raise ValueError(
            f"RunSpec: unknown stream_params {unknown} for stream {spec.stream!r}; allowed: {', '.join(allowed)}"
        )
    if spec.problem is not None:
        problems.get_problem(spec.problem)
    # a real data set's shape is known only once it is loaded: check name and parameters on a stand-in shape
    stand_in = (1, 1) if spec.domain == "nuclear_ball" else (1,)
    domain = domains.make_domain(spec.domain, spec.shape or stand_in, **dict(spec.domain_params))
    from online_convex import learners

    # the Learner's own checks (a method that runs unconstrained only, eta='theory' on an unbounded domain or
    # for a method without a theorem step) depend on the method, eta and the domain's boundedness, not on data
    learners.Learner(method=spec.method, config=spec.method_config(), eta=spec.eta, domain=domain)


def run_one(spec: RunSpec) -> Any:
    """Run one spec through the OCO simulator and return its ``online_convex.simulate.RegretTrace``.

    Top-level, so it pickles to any executor's workers. The data and the comparator depend on the stream,
    loss, domain, T, seeds, entropy and checkpoints only, not on the method: :func:`_stream_setup` memoises
    them per process, so a worker running several methods or step sizes on one stream solves the
    comparator once (more than half of a run's time on the real data sets). Memoising a deterministic
    function changes no number (tests: identical results for any executor and worker count).
    """
    from online_convex import learners, simulate

    data, problem, domain, ckpt, comparator = _stream_setup(
        spec.stream, spec.stream_params, spec.shape, spec.problem, spec.domain, spec.domain_params,
        spec.T, spec.seeds, spec.entropy, spec.checkpoints,
    )  # fmt: skip
    learner = learners.Learner(method=spec.method, config=spec.method_config(), eta=spec.eta, domain=domain)
    return simulate.run(learner, problem, data, checkpoints=ckpt, comparator=comparator)


@functools.lru_cache(maxsize=2)  # the sweep file orders runs stream by stream; two streams' data are small
def _stream_setup(
    stream, stream_params, shape, problem_name, domain_name, domain_params, T, seeds, entropy, n_ckpt
):
    """(data, problem, domain, checkpoints, comparator (value, lower)) of one stream; memoised per process."""
    from online_convex import domains, problems, simulate, streams

    params = dict(stream_params)
    if problem_name is not None:
        params["problem"] = problem_name  # the stream draws its labels for this loss
    data, name = streams.make_stream(stream, shape=shape, T=T, seeds=seeds, entropy=entropy, **params)
    problem = problems.get_problem(name)
    domain = domains.make_domain(domain_name, tuple(data.a.shape[2:]), **dict(domain_params))
    ckpt = simulate.geometric_checkpoints(T, n_ckpt)
    return data, problem, domain, ckpt, simulate.comparator_bounds(problem, data, domain, ckpt)


# --- executors ---------------------------------------------------------------------------------------


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``).

    Called in the pool's fork server and in every worker: a ``kill -9`` of ``memopt sweep`` then takes the fork
    server down, which takes its workers down, and the resource tracker sees its pipe close and exits; nothing
    is left blocked on a pipe. If the parent died before the call (the process was already re-parented to
    init), exit at once. A no-op where there is no prctl (macOS, Windows: their spawned workers notice the
    broken pipe to the parent instead)."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
        return  # a sandbox without prctl: the old behaviour, no worse
    if os.getppid() == 1:  # the parent died between our fork and the prctl
        os._exit(1)


def _one_thread() -> None:
    """Pool-worker initializer: die with the fork server (:func:`die_with_parent`), and one
    BLAS/OpenMP/torch thread per worker (workers × threads ≤ cores)."""
    die_with_parent()
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)


def local_executor(workers: int | None = None) -> ProcessPoolExecutor:
    """A process pool of ``workers`` (default: CPU count) single-threaded workers.

    Workers are forked from a ``forkserver`` that has preloaded :mod:`online_convex.sweep_worker` (threads
    pinned to 1, torch and the simulator imported), so a pool starts in milliseconds once the server runs;
    plain ``fork`` of a process that may have run torch's thread pools can deadlock. Where there is no
    forkserver (Windows) workers are spawned and import everything themselves.
    """
    from memopt_theory.validation import check_int

    if workers is not None:
        check_int(workers, "workers", where="local_executor", low=1)
    ctx: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["online_convex.sweep_worker"])  # used when the server first starts
    else:
        ctx = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 1, mp_context=ctx, initializer=_one_thread
    )


@dataclass(frozen=True)
class SweepReport:
    """What :func:`sweep` did: ``keys`` of every distinct spec in order; how many it ran and skipped."""

    keys: tuple[str, ...]
    ran: int
    skipped: int
    results_dir: Path


def sweep(
    specs: Iterable[RunSpec],
    executor: Executor | Any | None = None,
    *,
    results_dir: str | os.PathLike,
    progress: bool = True,
    workers: int | None = None,
) -> SweepReport:
    """Run every spec not yet in ``results_dir`` on ``executor`` and store each result as it arrives.

    Parameters
    ----------
    specs : iterable of RunSpec     duplicates (same key) run once
    executor : concurrent.futures.Executor, a ``distributed.Client``, or None
        None: a :func:`local_executor` of ``workers`` processes, shut down on return. A Dask client is used
        through ``client.get_executor()`` (a standard Executor). A given executor is not shut down.
    results_dir : path              the result store (:class:`online_convex.results.ResultStore`); results are
        written by this process as they complete, so a killed sweep keeps every finished run and a restart
        runs only the rest
    progress : bool                 a tqdm bar over the runs still to do

    Raises
    ------
    RuntimeError naming the spec when a run fails (finished runs stay stored; pending ones are cancelled).
    """
    from tqdm import tqdm

    from online_convex.results import ResultStore

    specs = list(specs)
    for i, s in enumerate(specs):
        if not isinstance(s, RunSpec):
            raise TypeError(f"sweep: specs[{i}] must be a RunSpec; got {type(s).__name__}")
    unique = list({s.key: s for s in specs}.values())
    store = ResultStore(results_dir)
    store.keys()  # a foreign file in the directory raises here, before any work
    todo = [s for s in unique if not store.has(s)]
    own = executor is None
    if executor is None:
        executor = local_executor(workers)
    elif hasattr(executor, "get_executor") and not isinstance(executor, Executor):
        executor = executor.get_executor()  # distributed.Client -> its concurrent.futures front
    if not isinstance(executor, Executor):
        raise TypeError(
            f"sweep: executor must be a concurrent.futures.Executor or a distributed.Client; got {executor!r}"
        )
    try:
        futures: dict[Future, RunSpec] = {executor.submit(run_one, s): s for s in todo}
        with tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress) as bar:
            for fut in as_completed(futures):
                spec = futures[fut]
                try:
                    trace = fut.result()
                except Exception as e:
                    for f in futures:
                        f.cancel()
                    raise RuntimeError(
                        f"sweep: run {spec.key} ({spec.label} on {spec.stream}) failed: {e!r}"
                    ) from e
                store.write(spec, trace)
                bar.update(1)
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
    return SweepReport(
        keys=tuple(s.key for s in unique),
        ran=len(todo),
        skipped=len(unique) - len(todo),
        results_dir=store.root,
    )
