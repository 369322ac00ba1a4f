#!/usr/bin/env python3
"""Before the fp8 / fa4 runs on a GPU: do the two new paths compute the right thing there, and how fast are their
kernels on the case's shapes? (Issue 24's code, issue 26's runs; docs/results/README.md has the output.)

fp8: the case's Float8Linear against the fp16 GEMM on Llama-2-7B's projection shapes (M = a 12,288-token pack):
     relative error, and eager and compiled times of both (cuBLAS fp16 vs e4m3 rowwise).
fa4: the nvidia vendor's 'fa4' ragged attention against 'flash' on packs of real prompt lengths (eager and inside
     torch.compile): largest difference, and both kernels' times. Skipped, with the reason, where FlashAttention-4
     cannot run (vendors/nvidia/ragged.fa4_problem).

GPU: python3 tools/fp8_fa4_check.py [--skip-fa4]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.llama2_7b_mmlu.fp8 import Float8Linear  # noqa: E402


def timed(fn, reps: int = 20) -> float:
    """Median seconds of `fn()` (CUDA events), after three warm-up calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return sorted(times)[len(times) // 2]


def check_fp8(tokens: int) -> None:
    print(f"fp8 GEMMs, M = {tokens} tokens (e4m3 rowwise vs fp16, cuBLAS)")
    print(f"{'N x K':>13} {'rel err':>8} {'fp16 ms':>8} {'fp8 ms':>7} {'fp8 c ms':>8} {'fp16 TF/s':>9} {'fp8 TF/s':>8}")
    for n, k in ((12288, 4096), (4096, 4096), (22016, 4096), (4096, 11008)):
        lin = torch.nn.Linear(k, n, bias=False, device="cuda", dtype=torch.float16)
        x = torch.randn(tokens, k, device="cuda", dtype=torch.float16)
        f8 = Float8Linear.from_linear(lin, fast_accum=True)
        with torch.inference_mode():
            ref = lin(x).float()
            got = f8(x).float()
            err = ((got - ref).norm() / ref.norm()).item()
            compiled = torch.compile(f8, dynamic=True)
            compiled(x)
            t16, t8, t8c = timed(lambda: lin(x)), timed(lambda: f8(x)), timed(lambda: compiled(x))
        flops = 2 * tokens * n * k
        print(f"{n:>6} x {k:<6} {err:8.4f} {1e3 * t16:8.3f} {1e3 * t8:7.3f} {1e3 * t8c:8.3f} {flops / t16 / 1e12:9.0f} "
              f"{flops / t8c / 1e12:8.0f}")
        assert err < 0.08, f"fp8 GEMM error {err:.3f} on {n}x{k}"


def check_fa4() -> None:
    from vendors.nvidia import ragged

    problem = ragged.fa4_problem()
    if problem:
        print(f"fa4: skipped ({problem})")
        return
    gen = torch.Generator().manual_seed(0)
    lengths = [int(x) for x in torch.randint(300, 1500, (14,), generator=gen)]
    total, heads, dim = sum(lengths), 32, 128
    q, k, v = (torch.randn(total, heads, dim, generator=gen).to("cuda", torch.float16) for _ in range(3))
    cu = torch.tensor([0, *lengths]).cumsum(0).to(torch.int32).cuda()
    flash, fa4 = ragged.select("flash", "fp16"), ragged.select("fa4", "fp16")
    args = (q, k, v, cu, cu, max(lengths), max(lengths), True, dim ** -0.5)
    with torch.inference_mode():
        a, b = flash(*args), fa4(*args)
        diff = (a.float() - b.float()).abs().max().item()
        compiled = torch.compile(lambda *xs: fa4(*xs) * 1.0, dynamic=True)
        c = compiled(*args)
        cdiff = (a.float() - c.float()).abs().max().item()
        # the pruned last layer's call: one query per prompt, all of its keys, not causal
        rows = cu[1:] - 1
        q1, cu1 = q[rows.long()].contiguous(), torch.arange(len(lengths) + 1, dtype=torch.int32, device="cuda")
        one = (q1, k, v, cu1, cu, 1, max(lengths), False, dim ** -0.5)
        d1 = (flash(*one).float() - fa4(*one).float()).abs().max().item()
        t_flash, t_fa4 = timed(lambda: flash(*args)), timed(lambda: fa4(*args))
    causal_flops = sum(4 * heads * dim * n * (n + 1) / 2 for n in lengths)
    print(f"fa4 vs flash on a pack of {len(lengths)} prompts ({total} tokens): max |diff| {diff:.2e} eager, {cdiff:.2e} "
          f"compiled, {d1:.2e} one query per prompt; flash {1e3 * t_flash:.3f} ms ({causal_flops / t_flash / 1e12:.0f} "
          f"TF/s), fa4 {1e3 * t_fa4:.3f} ms ({causal_flops / t_fa4 / 1e12:.0f} TF/s)")
    assert max(diff, cdiff, d1) < 1e-2, "fa4 and flash disagree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-fa4", action="store_true")
    parser.add_argument("--tokens", type=int, default=12288)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "cuda", torch.version.cuda)
    check_fp8(args.tokens)
    if not args.skip_fa4:
        check_fa4()
    print("fp8/fa4 check: OK")


if __name__ == "__main__":
    main()
