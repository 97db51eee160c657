r"""One-command GPU check: the GPU paths of memopt, each timed, in one table (≤ 8 minutes on one GPU).

    python -m benchmarks.gpu_check            # needs CUDA; on a CPU-only machine it says so and exits 0
    python -m benchmarks.gpu_check --smoke    # the same four steps on the CPU at toy sizes (tests run this)

Steps, each a subprocess with its own time budget (a step that overruns is reported as "timeout", the rest go on):

1. ``memopt spectra`` on the wide reference run: the char transformer at width 512 (2048-wide MLP factors), Shampoo
   and K-FAC factors recorded on the device, eigendecomposed every 100 steps;
2. ``benchmarks.recorder_overhead``: training-step time with the recorder ÷ without, on the device;
3. ``benchmarks.batched_seeds``: 64 seeds advanced in one batched call ÷ 64 sequential runs (a batched GPU eigh
   is where full-matrix AdaGrad gains);
4. ``benchmarks.fd_vs_full``: S-AdaGrad's FD step against full-matrix AdaGrad's eigh step at d = 1024, 2048.

The table gives each step's status, wall time and the last lines it printed (its own ratios). Run it when a GPU
is lent and paste the table; absolute times hold for that GPU only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch

BUDGET_S = 480  # the limit: the whole check in ≤ 8 minutes


def steps(device: str, out: str, smoke: bool) -> list[tuple[str, list[str], int]]:
    """(name, argv, budget in s) of the four checks; smoke = toy sizes on ``device``."""
    py = [sys.executable, "-m"]
    if smoke:
        return [
            ("spectra (char transformer, width 32)", py + ["memopt_theory", "spectra", "--run", "char_transformer",
             "--width", "32", "--batch-size", "4", "--steps", "4", "--snapshot-every", "2", "--device", device,
             "--out", os.path.join(out, "spectra")], 120),
            ("recorder overhead", py + ["benchmarks.recorder_overhead", "--device", device, "--steps", "4",
             "--snapshot-every", "2", "--width", "32", "--batch-size", "4", "--context", "8", "--repeats", "1"], 120),
            ("batched seeds", py + ["benchmarks.batched_seeds", "--device", device, "--d", "8", "--T", "20",
             "--seeds", "4"], 120),
            ("S-AdaGrad vs full-matrix step", py + ["benchmarks.fd_vs_full", "--device", device, "--dims", "32",
             "--ells", "4", "--steps", "2", "--repeats", "1"], 120),
        ]  # fmt: skip
    return [
        ("spectra (char transformer, width 512: 2048-wide factors)", py + ["memopt_theory", "spectra", "--run",
         "char_transformer", "--width", "512", "--batch-size", "16", "--steps", "200", "--snapshot-every", "100",
         "--device", device, "--out", os.path.join(out, "spectra")], 170),
        ("recorder overhead (char transformer)", py + ["benchmarks.recorder_overhead", "--device", device,
         "--repeats", "3"], 110),
        ("batched seeds (d = 64, 64 seeds)", py + ["benchmarks.batched_seeds", "--device", device, "--T", "500"], 100),
        ("S-AdaGrad vs full-matrix step (d = 1024, 2048)", py + ["benchmarks.fd_vs_full", "--device", device,
         "--dims", "1024", "2048"], 90),
    ]  # fmt: skip


def run_step(argv: list[str], budget: int) -> tuple[str, float, str]:
    """(status, wall seconds, output) of one step; the step's whole process group is killed at its budget."""
    t0 = time.perf_counter()
    p = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = p.communicate(timeout=budget)
        status = "ok" if p.returncode == 0 else f"failed (exit {p.returncode})"
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)  # its children (dataloaders, pools) too: no orphans
        out, _ = p.communicate()
        status = f"timeout ({budget} s)"
    return status, time.perf_counter() - t0, out or ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="memopt GPU check: spectra, recorder overhead, batched seeds, FD vs full"
    )
    p.add_argument("--device", default="cuda", help="device to check (default: cuda)")
    p.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: checks the script itself")
    p.add_argument("--lines", type=int, default=6, help="last lines of each step's output shown (default: 6)")
    a = p.parse_args(argv)
    device = "cpu" if a.smoke else a.device
    if not a.smoke and device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine (torch.cuda.is_available() is False); skipped. "
              "Run it where a GPU is lent, or --smoke for the CPU dry run.")  # fmt: skip
        return 0
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"gpu_check on {name} ({device}), torch {torch.__version__}, budget {BUDGET_S} s")
    out = tempfile.mkdtemp(prefix="memopt_gpu_check_")
    rows, failed = [], 0
    t_all = time.perf_counter()
    try:
        for title, args, budget in steps(device, out, a.smoke):
            status, wall, text = run_step(args, budget)
            failed += status != "ok"
            tail = [ln for ln in text.strip().splitlines() if ln.strip()][-a.lines :]
            rows.append((title, status, wall, tail))
            print(f"  {title}: {status}, {wall:.1f} s", flush=True)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print("\n| step | status | wall s | last lines of its output |\n|---|---|---|---|")
    for title, status, wall, tail in rows:
        print(f"| {title} | {status} | {wall:.1f} | {' / '.join(tail)} |")
    print(f"\ntotal {time.perf_counter() - t_all:.1f} s; {len(rows) - failed} of {len(rows)} steps ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
