"""Precisions: their names, the dtype a plain model is built in, and which are lower than their validation."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp16", "bf16", "fp32", "fp8")

# A precision whose inference pass computes in a lower precision than the plain model can (fp8: the decoder's
# GEMMs in float8 e4m3) is validated against the plain model in this precision: the model is built and the
# validation pass runs in it, and the inference pass's lower-precision layers are switched on after it by the
# case's optimization for that precision (`Optimization.precisions`). Its predictions may then differ from the
# plain model's beyond rounding, so the verdict applies MLPerf's accuracy rule instead of the agreement rule.
VALIDATION_PRECISION = {"fp8": "fp16"}


def validation_precision(precision: str) -> str:
    """The precision of the plain model (and the validation pass) of a run at `precision`."""
    return VALIDATION_PRECISION.get(precision, precision)


def is_lossy(precision: str) -> bool:
    """Whether the inference pass at `precision` computes in lower precision than its validation pass."""
    return validation_precision(precision) != precision


def torch_dtype(precision: str) -> "torch.dtype":
    """The torch dtype the plain model is built in at a precision (one of PRECISIONS): fp8 runs build it in fp16."""
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[validation_precision(precision)]
