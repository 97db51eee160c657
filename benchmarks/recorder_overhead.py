r"""Training time with the Kronecker-factor recorder ÷ without, on the char transformer (target ≤ 1.10×).

    python -m benchmarks.recorder_overhead [--steps 200] [--snapshot-every 100] [--device cpu] [--repeats 3]

The recorder accumulates every step (β = 0.999) and a ``Snapshotter`` eigendecomposes every factor every
``--snapshot-every`` steps (float64 ``eigh`` on the CPU, written to a temporary store): the production setting.
Each configuration is timed against a plain run right before it (same seed, same batches), alternating so that
load on the machine hits both; the printed figure is the median ratio over ``--repeats`` pairs. No assertion:
the numbers are for reading.

What to expect (arithmetic, default sizes: width 128, 2 blocks, 32×64 = N tokens). A Linear d_in → d_out costs
6·N·d_in·d_out FLOPs to train (forward + two backward products); its K-FAC Grams cost 2·N·(d_in + 1)² for A and
2·N·d_out² for G, i.e. (d_in² + d_out²)/(3·d_in·d_out) ≥ 2/3 of its training for every accumulated step, and
17/12 for the 128 ↔ 512 MLP layers. Summed over the model: training 5.4 GFLOP a step (attention included),
K-FAC 5.5, Shampoo (2·(d_out²·d_in + d_in²·d_out), independent of N) 0.4. So with K-FAC accumulated every step
the FLOP ratio is ≈ 2.1 and the ≤ 1.10× target is out of reach on compute-bound hardware; Shampoo alone is
≈ 1.08 and K-FAC + Shampoo every 10th step ≈ 1.11. Measured on the shared 2-core CPU box (load average 5–8):
K-FAC + Shampoo every step, eigensolve every 100, 100 steps: wall 1.84 and 1.27, CPU 2.60 and 1.24 in two
pairs (framework overhead — layer norms, softmax, Adam, Python — dilutes the FLOP ratio).

What cuts it. (1) Shampoo's G Gᵀ is fused with the discount into one in-place GEMM (``addmm_``), K-FAC's 1/count
into an in-place ``add_``: no d × d temporary per step. (2) Eigensolves in the background
(``Snapshotter(background=True)``): the O(d³) solves and the fsyncs of the snapshot files run on a worker
thread from a copy of the factors while training goes on; the timed span still ends when the last snapshot
is on disk. (3) K-FAC from a random 1/8 of the tokens (``FactorRecorder(kfac_rows=N/8)``, unbiased, variance
stated there and tested): the Grams cost 5.5/8 ≈ 0.7 GFLOP, so Shampoo + K-FAC every step is ≈ 1 + (0.7 + 0.4)/5.4
≈ 1.2 by arithmetic, inside the 1.3× target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

import torch

from spectra.recorder import FactorRecorder
from spectra.runs import make_run, train
from spectra.snapshots import Snapshotter
from spectra.store import SnapshotStore


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(
    a: argparse.Namespace,
    kinds: tuple[str, ...] | None,
    *,
    snapshots: bool = True,
    every: int = 1,
    background: bool = False,
    kfac_rows: int | None = None,
) -> tuple[float, float]:
    """(wall, CPU) seconds of ``a.steps`` training steps (model and data built beforehand, not timed).

    CPU time of this process is the fairer clock on a shared CPU machine (others' load stretches wall time
    but not ours); on a GPU only wall time means anything.
    """
    run = make_run(
        "char_transformer", device=a.device, seed=0, width=a.width, batch_size=a.batch_size, context=a.context
    )
    train(run, 2)  # warm-up: allocator, kernels, first-call overheads
    run = make_run(
        "char_transformer", device=a.device, seed=0, width=a.width, batch_size=a.batch_size, context=a.context
    )
    rec = on_step = None
    with tempfile.TemporaryDirectory() as tmp:
        if kinds:
            rec = FactorRecorder(
                run.model,
                kinds,
                beta=0.999,
                every=every,
                terms_per_example=run.terms_per_example,
                kfac_rows=kfac_rows,
            )
            if snapshots:
                snap = Snapshotter(
                    SnapshotStore(tmp, {"benchmark": "recorder_overhead"}),
                    every=a.snapshot_every,
                    background=background,
                )

                def on_step(t: int) -> None:
                    if (t + 1) % a.snapshot_every == 0:
                        snap.maybe_snapshot(t + 1, rec.factors())

        sync(run.device)
        t0, c0 = time.perf_counter(), time.process_time()
        train(run, a.steps, recorder=rec, on_step=on_step)
        if rec is not None and snapshots:
            snap.close()  # the last snapshot is on disk: background solves are inside the timed span
        sync(run.device)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if rec is not None:
            rec.close()
    return dt, dc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--snapshot-every", type=int, default=100)
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    a.device = torch.device(a.device)
    print(
        f"char_transformer width {a.width}, batch {a.batch_size}×{a.context} tokens, {a.steps} steps, "
        f"eigensolve every {a.snapshot_every}, device {a.device}, torch threads {torch.get_num_threads()}, "
        f"load average {open('/proc/loadavg').read().split()[0] if sys.platform == 'linux' else 'n/a'}",
        flush=True,
    )
    rows = a.batch_size * a.context // 8  # K-FAC subsample: 1/8 of the tokens (variance: FactorRecorder doc)
    configs = [  # (label, kinds, eigensolves, accumulate every, background eigensolves, K-FAC rows)
        ("shampoo only, eigensolves in the foreground", ("shampoo",), True, 1, False, None),
        ("shampoo only, eigensolves in the background", ("shampoo",), True, 1, True, None),
        ("shampoo+kfac, with eigensolves", ("shampoo", "kfac"), True, 1, True, None),
        (f"shampoo+kfac, K-FAC from {rows} tokens", ("shampoo", "kfac"), True, 1, True, rows),
        ("shampoo+kfac, accumulation only", ("shampoo", "kfac"), False, 1, False, None),
        ("kfac only, with eigensolves", ("kfac",), True, 1, True, None),
        ("shampoo+kfac every 10th step", ("shampoo", "kfac"), True, 10, True, None),
    ]
    base_times = []
    for label, kinds, snaps, every, bg, kfac_rows in configs:
        wall, cpu = [], []
        for _ in range(a.repeats):
            base = seconds(a, None)
            base_times.append(base[0])
            t = seconds(a, kinds, snapshots=snaps, every=every, background=bg, kfac_rows=kfac_rows)
            wall.append(t[0] / base[0])
            cpu.append(t[1] / base[1])
        print(
            f"{label:<46} time ÷ no recorder: wall {statistics.median(wall):.3f} "
            f"(range {min(wall):.3f}–{max(wall):.3f}), CPU {statistics.median(cpu):.3f} "
            f"(range {min(cpu):.3f}–{max(cpu):.3f}); median of {a.repeats}",
            flush=True,
        )
    print(f"no recorder: {statistics.median(base_times) / a.steps * 1e3:.1f} ms/step wall (median)")


if __name__ == "__main__":
    main()
