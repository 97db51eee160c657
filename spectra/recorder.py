r"""``FactorRecorder``: Shampoo and K-FAC Kronecker factors of a model's layers during training.

Factor conventions (derivations in ``spectra.kfac``): Shampoo L = Σ_t β^{T−t} G_tG_tᵀ, R = Σ_t β^{T−t} G_tᵀG_t from
``p.grad``; K-FAC A = Σ_t β^{T−t} A_t, G = Σ_t β^{T−t} G_t with A_t the mean of a aᵀ over input rows and G_t the
per-loss-term mean of ĝ ĝᵀ (ĝ: output gradient of the *unreduced* loss term). ``reduction`` tells the recorder
how the backpropagated loss was reduced so that it can undo the 1/N of a mean: with
``reduction="mean"`` the loss is (1/N_ℓ)Σ_n ℓ_n over N_ℓ = batch · ``terms_per_example`` terms (a sequence model
averaging over tokens has ``terms_per_example`` = sequence length) and ĝ = N_ℓ · (output gradient).

Usage::

    with FactorRecorder(model, beta=0.999) as rec:
        for x, y in batches:
            loss = loss_fn(model(x), y)   # one forward per step
            opt.zero_grad(); loss.backward()
            rec.step()                    # before opt.step(): reads p.grad
            opt.step()
        F = rec.factors()                 # {"<layer>:shampoo_L": (m, m), ...}

Every forward run with gradients enabled between two ``step()`` calls adds its rows (micro-batches of one
step add up; an evaluation forward outside ``torch.no_grad()`` would too). Activation checkpointing, which
re-runs forwards, would count rows twice.

Sampled Fisher (``fisher="sampled"``): call ``rec.sampled_backward(logits)`` after the forward and before
``loss.backward()``; labels are drawn from the model's predictive distribution and only that backward feeds
G (K-FAC's true Fisher, estimated with one sample per term); ``p.grad`` is not touched by it.

Distributed: when ``torch.distributed`` is initialised with more than one rank, the K-FAC (sum, count) pairs are
all-reduced each accumulated step, so every rank holds the factors of the global batch. Shampoo reads
``p.grad``, which DistributedDataParallel has already averaged, so it is not reduced again.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from memopt_theory.validation import all_finite, check_choice, check_int, check_real
from spectra.kfac import gram, input_rows, output_grad_rows, weight_matrix
from spectra.sketched import FactorSketch, compress_columns, sketch_init, sketch_update

__all__ = ["FactorRecorder", "KINDS", "FACTORS"]

KINDS = ("shampoo", "kfac")
FACTORS = {"shampoo": ("shampoo_L", "shampoo_R"), "kfac": ("kfac_A", "kfac_G")}
_WHERE = "FactorRecorder"


@dataclass
class _Layer:
    name: str
    module: nn.Module
    dims: dict[str, int]  # factor -> dimension d of its d×d matrix
    kept: tuple[str, ...]  # factors recorded for this layer
    pending: dict[str, list] = field(default_factory=dict)  # "A"/"G" -> [sum, count] for the current step
    rows: dict[str, int] = field(default_factory=dict)  # factor -> outer products per step (for the null)

    @property
    def kfac(self) -> bool:
        return "kfac_A" in self.kept or "kfac_G" in self.kept


def _patterns(value, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{_WHERE}: {name} must be a glob pattern or a sequence of them; got {value!r}")
    return tuple(value)


def _kfac_supported(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    # unfold is im2col for zero padding and one group; other convs get Shampoo only
    return (
        isinstance(module, nn.Conv2d)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


class FactorRecorder:
    """Record Kronecker factors of every eligible layer (nn.Linear, nn.Conv2d) of ``model``.

    Parameters
    ----------
    model : nn.Module (a DistributedDataParallel wrapper is unwrapped)
    kinds : sequence of {"shampoo", "kfac"}
    beta : float in (0, 1] or None
        Discount: F_T = β F_{T−1} + F_t per accumulated step; None (= 1) is the plain sum.
    every : int ≥ 1
        Accumulate on step() calls 0, every, 2·every, …; hooks do no work on the other steps.
    min_dim, max_dim : int
        Keep a factor only if its dimension d satisfies min_dim ≤ d ≤ max_dim (per factor: a 1024×10 head
        can keep its 1024-dim factor and drop its 10-dim one).
    include, exclude : glob pattern(s) on module names (``fnmatch``), e.g. ``"blocks.*.attn.*"``.
    device : factors are kept here; default the device of the first eligible weight.
    fisher : "empirical" (true labels: the training backward) or "sampled" (see ``sampled_backward``).
    reduction : "mean" or "sum", how the backpropagated loss was reduced (K-FAC G scale, see module doc).
    terms_per_example : int ≥ 1, loss terms per example (tokens of a sequence) under a mean reduction.
    dtype : factor dtype; default float32, or float64 when the model is float64.
    seed : seed of the label sampler for ``fisher="sampled"``.
    sketch : int ≥ 2 or None
        Keep every factor as a Frequent Directions sketch of size ℓ = ``sketch`` (O(d·ℓ) memory, with
        F̄ ⪯ F ⪯ F̄ + ρI; ``spectra.sketched``) instead of the dense d × d sum; read it with ``sketches()``.
        Not available with more than one distributed rank (the sketch would need every rank's rows).
    kfac_rows : int ≥ 1 or None
        K-FAC from a random subsample: each accumulated step keeps m = min(kfac_rows, M) of the M rows (tokens ×
        examples; one uniform draw without replacement per step and row count, shared by A and G so both read
        the same positions) and estimates A_t = (1/M)Σ_r a_r a_rᵀ by Â_t = (1/m)Σ_{r∈S} a_r a_rᵀ, G_t likewise with
        its per-term scale. The estimate is unbiased, E Â_t = A_t, with entrywise variance
        Var(Â_t)_ij = (σ²_ij/m)·(M − m)/(M − 1), σ²_ij the variance of (a_r a_rᵀ)_ij over the M rows (sampling
        without replacement; 0 when m = M). Costs m/M of the Gram products. None: every row (exact).
    """

    def __init__(
        self,
        model: nn.Module,
        kinds: Sequence[str] = KINDS,
        *,
        beta: float | None = None,
        every: int = 1,
        min_dim: int = 1,
        max_dim: int | None = None,
        include=None,
        exclude=None,
        device=None,
        fisher: str = "empirical",
        reduction: str = "mean",
        terms_per_example: int = 1,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        process_group=None,
        sketch: int | None = None,
        kfac_rows: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{_WHERE}: model must be a torch.nn.Module; got {type(model).__name__}")
        if isinstance(kinds, str):
            kinds = (kinds,)
        kinds = tuple(kinds)
        if not kinds:
            raise ValueError(f"{_WHERE}: kinds must name at least one of {KINDS}; got ()")
        for k in kinds:
            check_choice(k, "kinds entry", KINDS, where=_WHERE)
        self.beta = (
            1.0 if beta is None else check_real(beta, "beta", where=_WHERE, low=0, high=1, low_open=True)
        )
        self.every = check_int(every, "every", where=_WHERE, low=1)
        min_dim = check_int(min_dim, "min_dim", where=_WHERE, low=1)
        if max_dim is not None:
            max_dim = check_int(max_dim, "max_dim", where=_WHERE, low=min_dim)
        self.fisher = check_choice(fisher, "fisher", ("empirical", "sampled"), where=_WHERE)
        self.reduction = check_choice(reduction, "reduction", ("mean", "sum"), where=_WHERE)
        self.terms_per_example = check_int(terms_per_example, "terms_per_example", where=_WHERE, low=1)
        self.seed = check_int(seed, "seed", where=_WHERE, low=0)
        inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
        if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
            raise TypeError(f"{_WHERE}: dtype must be a floating torch.dtype or None; got {dtype!r}")
        self.kinds = kinds
        self.process_group = process_group
        self.sketch = None if sketch is None else check_int(sketch, "sketch", where=_WHERE, low=2)
        self._sketches: dict[str, FactorSketch] = {}
        self.kfac_rows = None if kfac_rows is None else check_int(kfac_rows, "kfac_rows", where=_WHERE, low=1)
        self._row_subsets: dict[tuple[int, torch.device], Tensor] = {}  # M -> this step's kept rows

        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        self._layers: list[_Layer] = []
        seen: list[str] = []
        for name, mod in inner.named_modules():
            if not isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)) or mod.weight is None:
                continue
            seen.append(name)
            if inc is not None and not any(fnmatch.fnmatchcase(name, p) for p in inc):
                continue
            if exc is not None and any(fnmatch.fnmatchcase(name, p) for p in exc):
                continue
            m, n = weight_matrix(mod.weight).shape
            dims = {"shampoo_L": m, "shampoo_R": n, "kfac_A": n + (mod.bias is not None), "kfac_G": m}
            kept = [f for k in kinds for f in FACTORS[k] if k == "shampoo" or _kfac_supported(mod)]
            kept = tuple(f for f in kept if min_dim <= dims[f] <= (max_dim or math.inf))
            if kept:
                self._layers.append(_Layer(name, mod, dims, kept))
        if not self._layers:
            raise ValueError(
                f"{_WHERE}: model has no eligible layers for kinds={kinds}, min_dim={min_dim}, max_dim={max_dim}, "
                f"include={inc}, exclude={exc}; eligible are nn.Linear and nn.Conv2d (K-FAC: ungrouped, zero "
                f"padding) whose factor dimensions pass the filters; Linear/Conv layers found: {seen or 'none'}"
            )
        w0 = self._layers[0].module.weight
        self.device = torch.device(device) if device is not None else w0.device
        self.dtype = dtype or (torch.float64 if w0.dtype == torch.float64 else torch.float32)
        self.num_updates = 0
        self._calls = 0
        self._sampling: int | None = None  # loss terms of the sampled backward in progress
        self._generators: dict[torch.device, torch.Generator] = {}
        self._totals: dict[str, Tensor] = {}
        self._gram_cache: dict[tuple, tuple[Tensor, Tensor, int]] = {}
        self._handles = []
        for layer in self._layers:
            if layer.kfac:
                self._handles.append(layer.module.register_forward_pre_hook(self._make_pre_hook(layer)))
                self._handles.append(layer.module.register_forward_hook(self._make_fwd_hook(layer)))

    # --- context manager -------------------------------------------------------------------------------
    def __enter__(self) -> FactorRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove every hook; factors stay readable."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._gram_cache.clear()

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    # --- hooks -----------------------------------------------------------------------------------------
    def _capturing(self) -> bool:
        return torch.is_grad_enabled() and self._calls % self.every == 0

    def _add(self, layer: _Layer, key: str, S: Tensor, count: int) -> None:
        if key in layer.pending and self.sketch:  # column factors: [C₁, C₂][C₁, C₂]ᵀ = C₁C₁ᵀ + C₂C₂ᵀ
            layer.pending[key][0] = compress_columns(torch.cat([layer.pending[key][0], S], dim=1))
            layer.pending[key][1] += count
        elif key in layer.pending:  # out of place: S may be shared with other layers (see _input_gram)
            layer.pending[key][0] = layer.pending[key][0] + S
            layer.pending[key][1] += count
        else:
            layer.pending[key] = [S, count]

    def _input_gram(self, module: nn.Module, x: Tensor) -> tuple[Tensor, int]:
        """Σ a aᵀ of the input rows, computed once per step for layers reading the same tensor (q, k, v)."""
        key = (x.data_ptr(), tuple(x.shape), x.stride(), x._version, type(module), module.bias is not None)
        if isinstance(module, nn.Conv2d):
            key += (module.kernel_size, module.dilation, module.padding, module.stride)
        hit = self._gram_cache.get(key)
        if hit is not None and hit[0] is x:  # the tensor itself is held, so its memory cannot be reused
            return hit[1], hit[2]
        rows = input_rows(module, x.detach())
        a = self._subsample(rows).to(self.device, self.dtype)
        S = compress_columns(a.T) if self.sketch else gram(a)  # sketch: a factor C with C Cᵀ = Σ a aᵀ
        self._gram_cache[key] = (x, S, rows.shape[0])  # the full row count: the subsample is rescaled
        return S, rows.shape[0]

    def _subsample(self, rows: Tensor) -> Tensor:
        """The rows of this step's subsample (``kfac_rows``), rescaled so that Σ over them estimates Σ over all.

        With m of M rows kept, (M/m)·Σ_{r∈S} x_r x_rᵀ is unbiased for Σ_r x_r x_rᵀ; the factor √(M/m) on the rows
        does that inside the Gram product, so the counts (and the 1/M of the mean) stay those of the full batch.
        """
        M = rows.shape[0]
        if self.kfac_rows is None or self.kfac_rows >= M:
            return rows
        key = (M, rows.device)
        idx = self._row_subsets.get(key)
        if idx is None:
            gen = self._generators.get(torch.device("cpu"))
            if gen is None:
                gen = self._generators[torch.device("cpu")] = torch.Generator().manual_seed(self.seed + 1)
            idx = torch.randperm(M, generator=gen)[: self.kfac_rows].to(rows.device)
            self._row_subsets[key] = idx
        return rows.index_select(0, idx) * math.sqrt(M / self.kfac_rows)

    def _make_pre_hook(self, layer: _Layer):
        def hook(module, inputs):
            if not self._capturing() or "kfac_A" not in layer.kept:
                return
            S, rows = self._input_gram(module, inputs[0])
            self._add(layer, "A", S, rows)

        return hook

    def _make_fwd_hook(self, layer: _Layer):
        def hook(module, inputs, output):
            if not self._capturing() or "kfac_G" not in layer.kept or not output.requires_grad:
                return
            n_terms = output.shape[0] * self.terms_per_example

            def grad_hook(g: Tensor) -> None:
                if self.fisher == "sampled":
                    if self._sampling is None:
                        return  # the training backward: true labels, not this factor's
                    scale, terms = 1.0, self._sampling  # the sampled loss is sum-reduced
                else:
                    scale = float(n_terms) if self.reduction == "mean" else 1.0
                    terms = n_terms
                rows = (
                    self._subsample(output_grad_rows(module, g.detach())).to(self.device, self.dtype) * scale
                )
                self._add(layer, "G", compress_columns(rows.T) if self.sketch else gram(rows), terms)
                layer.rows["kfac_G"] = rows.shape[0]

            output.register_hook(grad_hook)

        return hook

    def sampled_backward(self, output: Tensor, likelihood: str = "cross_entropy") -> None:
        """Backpropagate a loss with labels drawn from the model's predictive distribution (K-FAC G only).

        ``output`` : (..., C) logits ("cross_entropy": y ~ softmax) or predictions ("mse": y ~ N(f, I/2),
        loss Σ(f − y)², whose gradient covariance 2I is the Hessian of the squared error). Every leading row is
        one loss term. Parameter gradients are not accumulated into ``p.grad``.
        """
        if self.fisher != "sampled":
            raise ValueError(
                f"{_WHERE}.sampled_backward: needs fisher='sampled'; this recorder has {self.fisher!r}"
            )
        check_choice(likelihood, "likelihood", ("cross_entropy", "mse"), where=f"{_WHERE}.sampled_backward")
        if not self._capturing():
            return
        gen = self._generators.get(output.device)
        if gen is None:
            gen = self._generators[output.device] = torch.Generator(device=output.device)
            gen.manual_seed(self.seed)
        f = output.reshape(-1, output.shape[-1])
        with torch.no_grad():
            if likelihood == "cross_entropy":
                y = f.softmax(dim=1).multinomial(1, generator=gen).squeeze(1)
            else:
                y = f + math.sqrt(0.5) * torch.randn(f.shape, generator=gen, device=f.device, dtype=f.dtype)
        loss = (
            F.cross_entropy(f, y, reduction="sum") if likelihood == "cross_entropy" else ((f - y) ** 2).sum()
        )
        weights = [layer.module.weight for layer in self._layers if "kfac_G" in layer.kept]
        self._sampling = f.shape[0]
        try:
            torch.autograd.grad(loss, weights, retain_graph=True, allow_unused=True)
        finally:
            self._sampling = None

    # --- accumulation ----------------------------------------------------------------------------------
    def _all_reduce(self, pairs: list[list]) -> None:
        """Sum every pending (sum, count) pair across ranks in one collective."""
        if (
            not (dist.is_available() and dist.is_initialized())
            or dist.get_world_size(self.process_group) == 1
        ):
            return
        if self.sketch:
            raise ValueError(
                f"{_WHERE}: sketch={self.sketch} is single-process only (the sketch of the global batch needs "
                "every rank's rows); record dense factors (sketch=None) under DDP"
            )
        flat = torch.cat([torch.cat([S.reshape(-1), S.new_tensor([float(c)])]) for S, c in pairs])
        dist.all_reduce(flat, group=self.process_group)
        i = 0
        for p in pairs:
            n = p[0].numel()
            p[0] = flat[i : i + n].reshape(p[0].shape)
            p[1] = round(float(flat[i + n]))
            i += n + 1

    def step(self) -> None:
        """Accumulate this step's factors (call after ``loss.backward()``, before ``optimizer.step()``)."""
        call, self._calls = self._calls, self._calls + 1
        self._gram_cache.clear()
        self._row_subsets.clear()
        if call % self.every:
            for layer in self._layers:
                layer.pending.clear()
            return
        # every rank must join the collective with the same layout, so missing statistics are zeros
        for layer in self._layers:
            for key, f in (("A", "kfac_A"), ("G", "kfac_G")):
                if f in layer.kept and key not in layer.pending:
                    d = layer.dims[f]
                    layer.pending[key] = [
                        torch.zeros(d, 0 if self.sketch else d, device=self.device, dtype=self.dtype),
                        0,
                    ]
        self._all_reduce([layer.pending[k] for layer in self._layers for k in sorted(layer.pending)])
        # every layer's statistics are computed and checked before any total changes: one NaN/inf in a gradient,
        # an activation or an output gradient would poison the factor for good (every later snapshot)
        staged = []
        try:
            for layer in self._layers:
                new: dict = {}
                rows: dict[str, int] = {}
                if "shampoo_L" in layer.kept or "shampoo_R" in layer.kept:
                    g = layer.module.weight.grad
                    if g is None:  # unused this step: a zero gradient
                        g = torch.zeros_like(layer.module.weight)
                    self._check_finite(layer, "weight.grad", g)
                    G = weight_matrix(g.detach().to(self.device, self.dtype))
                    # G Gᵀ and Gᵀ G are finite when max|g|²·max(m, n) is: checked without forming them
                    peak = float(G.abs().max()) if G.numel() else 0.0
                    if peak * peak * max(G.shape) > torch.finfo(self.dtype).max:
                        raise ValueError(
                            f"{_WHERE}.step: layer {layer.name!r}: weight.grad has max |g| = {peak:.3g}, so G Gᵀ "
                            f"may overflow {self.dtype}; nothing was accumulated this step and the factors are "
                            "as they were"
                        )
                    if self.sketch:  # L = G Gᵀ and R = Gᵀ G as column factors, never d × d
                        new["shampoo_L"], new["shampoo_R"] = G, G.T
                    else:  # product pairs: the total takes β·total + A·B in one fused GEMM (_accumulate)
                        new["shampoo_L"], new["shampoo_R"] = (G, G.T), (G.T, G)
                    rows["shampoo_L"], rows["shampoo_R"] = G.shape[1], G.shape[0]  # columns, rows of G
                for key, f in (("A", "kfac_A"), ("G", "kfac_G")):
                    if f in layer.kept:
                        S, count = layer.pending[key]
                        self._check_finite(layer, f, S)
                        if self.sketch:
                            new[f] = S / math.sqrt(count) if count else S
                        else:  # (sum, weight): the total takes β·total + S/count in place
                            new[f] = (S, 1.0 / count if count else 0.0)
                        if key == "A":  # global rows (G has one per A row); the subsample's when subsampled
                            rows[f] = rows["kfac_G"] = min(count, self.kfac_rows or count)
                staged.append((layer, new, rows))
        finally:
            for layer in self._layers:
                layer.pending.clear()
        for layer, new, rows in staged:
            layer.rows.update(rows)
            for f in layer.kept:
                k = f"{layer.name}:{f}"
                if self.sketch:
                    sk = self._sketches.get(k)
                    if sk is None:
                        sk = sketch_init(layer.dims[f], self.sketch, dtype=self.dtype, device=self.device)
                    self._sketches[k] = sketch_update(sk, new[f], self.beta)
                else:
                    self._accumulate(k, new[f])
        self.num_updates += 1

    def _check_finite(self, layer: _Layer, what: str, x: Tensor) -> None:
        if bool(all_finite(x)):  # one fused reduction per statistic; the count only on failure
            return
        bad = ~torch.isfinite(x)
        if bad.any():
            source = {"kfac_A": " (from its inputs)", "kfac_G": " (from its output gradients)"}.get(what, "")
            raise ValueError(
                f"{_WHERE}.step: layer {layer.name!r}: {what} has {int(bad.sum())} NaN/inf entries{source}; "
                "nothing was accumulated this step and the factors are as they were"
            )

    def _accumulate(self, key: str, new: tuple[Tensor, Tensor] | tuple[Tensor, float]) -> None:
        """F ← β·F + (A·B for a pair of matrices | w·S for a (sum, weight) pair), in place after the first step.

        The same F_T = Σ_t β^{T−t} F_t as ``spectra.kfac.accumulate``, without a d × d temporary per step:
        ``addmm_`` fuses Shampoo's G Gᵀ with the discount, ``add_(alpha=w)`` K-FAC's 1/count.
        """
        total = self._totals.get(key)
        a, b = new
        if isinstance(b, Tensor):
            if total is None:
                self._totals[key] = a @ b
            else:
                total.addmm_(a, b, beta=self.beta)
        elif total is None:
            self._totals[key] = a * b
        else:
            total.mul_(self.beta).add_(a, alpha=b)

    def factors(self) -> dict[str, Tensor]:
        """{"<layer>:<factor>": (d, d)} on ``device`` in ``dtype``; copies, so callers may modify them."""
        if self.sketch:
            raise ValueError(
                f"{_WHERE}.factors: this recorder keeps FD sketches (sketch={self.sketch}), not dense factors; "
                "use sketches()"
            )
        if not self._totals:
            raise ValueError(
                f"{_WHERE}.factors: no step accumulated yet (num_updates = 0); call step() first"
            )
        return {k: v.clone() for k, v in self._totals.items()}

    def sketches(self) -> dict[str, FactorSketch]:
        """{"<layer>:<factor>": FactorSketch} of a ``sketch=ℓ`` recorder (``spectra.sketched``)."""
        if not self.sketch:
            raise ValueError(
                f"{_WHERE}.sketches: this recorder keeps dense factors (sketch=None); use factors()"
            )
        if not self._sketches:
            raise ValueError(
                f"{_WHERE}.sketches: no step accumulated yet (num_updates = 0); call step() first"
            )
        return dict(self._sketches)

    def factor_shapes(self) -> dict[str, tuple[int, int]]:
        """{"<layer>:<factor>": (d, r)}: the factor is d×d and each step adds r outer products (for the null)."""
        out = {}
        for layer in self._layers:
            for f in layer.kept:
                out[f"{layer.name}:{f}"] = (layer.dims[f], max(1, layer.rows.get(f, 1)))
        return out
