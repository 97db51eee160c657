r"""Reference training runs that need no download, for recording Kronecker-factor spectra.

* ``digits_mlp``: 64 → width → width → 10 ReLU MLP on scikit-learn's 8×8 digits (width 1024: the middle layer's
  Shampoo and K-FAC factors are 1024×1024, the block size of Sketchy's experiments).
* ``digits_cnn``: two 3×3 convs (32, 64 channels) + 2×2 max-pool + linear head on the same digits.
* ``char_transformer``: a pre-LN decoder-only character model on the documentation text CPython ships in
  ``pydoc_data.topics``; attention projections q, k, v, o are ``nn.Linear`` so the recorder's hooks fire.
* ``patch_autoencoder``: 64 → width → 32 → width → 64 on 8×8 grey patches of scikit-learn's sample images.

Every run is a pure function of (name, seed): the model is initialised on CPU under a forked RNG and then moved
to ``device``, and batch t is drawn from a CPU generator seeded by (seed, t), so the same seed gives the same
weights and batches on any device. Losses are mean-reduced over examples (over tokens for the transformer,
which is why its ``terms_per_example`` is the context length).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from memopt_theory.validation import check_choice, check_int, check_real

__all__ = ["Run", "make_run", "train", "RUNS", "char_corpus"]

RUNS = ("digits_mlp", "digits_cnn", "char_transformer", "patch_autoencoder")


@dataclass
class Run:
    """A model, a deterministic batch source and its loss; ``likelihood`` names the sampled-Fisher model."""

    name: str
    model: nn.Module
    batch: Callable[[int], tuple[Tensor, Tensor]]  # step t -> (inputs, targets) on the run's device
    loss: Callable[[Tensor, Tensor], Tensor]  # (output, targets) -> mean-reduced loss
    terms_per_example: int
    likelihood: str  # "cross_entropy" or "mse"
    device: torch.device


# --- data --------------------------------------------------------------------------------------------------
@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


@cache
def char_corpus() -> str:
    """The pydoc topic texts, in sorted topic order (a fixed ~1 MB of English and Python)."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


@cache
def _patches(seed: int, per_image: int = 4000) -> np.ndarray:
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    out = []
    for i, img in enumerate(load_sample_images().images):
        grey = img.mean(axis=2) / 255.0
        out.append(
            extract_patches_2d(grey, (8, 8), max_patches=per_image, random_state=seed + i).reshape(-1, 64)
        )
    p = np.concatenate(out).astype(np.float32)
    return (p - p.mean(axis=1, keepdims=True)) / (p.std() + 1e-8)  # per-patch DC removed, one global scale


def _gen(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)  # batch t depends on (seed, t) only


# --- models ------------------------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        B, S, d = x.shape
        q, k, v = (
            f(x).view(B, S, self.heads, d // self.heads).transpose(1, 2) for f in (self.q, self.k, self.v)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, S, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: Tensor) -> Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        return self.head(self.ln(self.blocks(x)))


def _build(name: str, width: int, seed: int, context: int, vocab: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "digits_mlp":
            return nn.Sequential(
                nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
            )
        if name == "digits_cnn":
            return nn.Sequential(
                nn.Conv2d(1, width // 2, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width // 2, width, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(16 * width, 10),
            )
        if name == "char_transformer":
            return CharTransformer(vocab, width, heads=4, layers=2, context=context)
        return nn.Sequential(
            nn.Linear(64, width),
            nn.ReLU(),
            nn.Linear(width, 32),
            nn.Linear(32, width),
            nn.ReLU(),
            nn.Linear(width, 64),
        )


DEFAULT_WIDTH = {"digits_mlp": 1024, "digits_cnn": 64, "char_transformer": 128, "patch_autoencoder": 256}


def make_run(
    name: str = "digits_mlp",
    *,
    device=None,
    seed: int = 0,
    width: int | None = None,
    batch_size: int = 128,
    context: int = 64,
) -> Run:
    """Build reference run ``name`` (one of ``RUNS``) on ``device`` (default CPU), deterministic in ``seed``.

    ``width``: hidden width (MLP, autoencoder), channels of the second conv (CNN; the first has half), model
    dimension (transformer, a multiple of its 4 heads); default ``DEFAULT_WIDTH[name]``. ``context``: the
    transformer's sequence length (its loss averages over batch_size·context tokens).
    """
    where = "make_run"
    check_choice(name, "name", RUNS, where=where)
    check_int(seed, "seed", where=where, low=0)
    width = DEFAULT_WIDTH[name] if width is None else check_int(width, "width", where=where, low=4)
    if name == "char_transformer" and width % 4:
        raise ValueError(f"{where}: width must be a multiple of the 4 attention heads; got {width}")
    check_int(batch_size, "batch_size", where=where, low=1)
    check_int(context, "context", where=where, low=2)
    device = torch.device("cpu" if device is None else device)

    loss: Callable[[Tensor, Tensor], Tensor]  # (model output, target) -> the batch's mean loss
    if name in ("digits_mlp", "digits_cnn"):
        X, y = (torch.from_numpy(a).to(device) for a in _digits())
        if name == "digits_cnn":
            X = X.view(-1, 1, 8, 8)

        def batch(t: int) -> tuple[Tensor, Tensor]:
            i = torch.randint(len(y), (batch_size,), generator=_gen(seed, t)).to(device)
            return X[i], y[i]

        loss, terms, lik, vocab = F.cross_entropy, 1, "cross_entropy", 0
    elif name == "char_transformer":
        text = char_corpus()
        chars = sorted(set(text))
        lut = {c: i for i, c in enumerate(chars)}
        data = torch.tensor([lut[c] for c in text], dtype=torch.long).to(device)
        vocab = len(chars)

        def batch(t: int) -> tuple[Tensor, Tensor]:
            start = torch.randint(len(data) - context - 1, (batch_size,), generator=_gen(seed, t)).to(device)
            idx = start[:, None] + torch.arange(context + 1, device=device)
            seq = data[idx]
            return seq[:, :-1], seq[:, 1:]

        def loss(out: Tensor, y: Tensor) -> Tensor:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

        terms, lik = context, "cross_entropy"
    else:
        P = torch.from_numpy(_patches(seed)).to(device)

        def batch(t: int) -> tuple[Tensor, Tensor]:
            i = torch.randint(len(P), (batch_size,), generator=_gen(seed, t)).to(device)
            return P[i], P[i]

        def loss(out: Tensor, y: Tensor) -> Tensor:
            return ((out - y) ** 2).sum(dim=1).mean()  # one loss term per patch: Σ over its 64 pixels

        terms, lik, vocab = 1, "mse", 0
    model = _build(name, width, seed, context, vocab).to(device)
    return Run(name, model, batch, loss, terms, lik, device)


def train(
    run: Run,
    steps: int,
    *,
    lr: float = 1e-3,
    recorder=None,
    on_step: Callable[[int], None] | None = None,
    progress: bool = False,
) -> list[float]:
    """Adam on ``run`` for ``steps`` steps; ``recorder.step()`` after each backward, then ``on_step(t)``.

    Returns the training loss per step (floats). With ``recorder.fisher == "sampled"`` the recorder's sampled
    backward runs on the model output before the training backward.
    """
    check_int(steps, "steps", where="train", low=1)
    check_real(lr, "lr", where="train", low=0, low_open=True)
    opt = torch.optim.Adam(run.model.parameters(), lr=lr)
    run.model.train()
    losses = []
    for t in tqdm(range(steps), desc=run.name, unit="step", disable=not progress, leave=False):
        x, y = run.batch(t)
        out = run.model(x)
        loss = run.loss(out, y)
        if not math.isfinite(loss.item()):
            raise ValueError(f"train: loss became {loss.item()} at step {t} of {run.name}; lower lr ({lr})")
        opt.zero_grad(set_to_none=True)
        if recorder is not None and recorder.fisher == "sampled":
            recorder.sampled_backward(out, run.likelihood)
        loss.backward()
        if recorder is not None:
            recorder.step()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(t)
    return losses
