"""Peak dense TFLOP/s of common GPUs, from NVIDIA's datasheets, per arithmetic class.

The class follows the fast-path options: strict fp32 (`tf32="off"`) runs on the FP32 (CUDA-core) peak; TF32
(`tf32="on"`, and for convolutions `"torch-default"`) on the TF32 tensor-core peak; bf16 autocast on the BF16
tensor-core peak. The datasheets print the tensor-core figures with 2:4 structured sparsity (marked *); the dense
figures below are half of those, as the datasheets' footnotes say. Nothing here is measured: it is the ceiling
a measured TFLOP/s is compared with. `--peak-tflops` overrides the table (and is the only peak on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    fp32: float
    tf32: float
    bf16: float
    source: str


H100_SXM = "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column (nvidia.com/en-us/data-center/h100)"
H100_PCIE = "NVIDIA H100 Tensor Core GPU datasheet, H100 PCIe column (nvidia.com/en-us/data-center/h100)"
H100_NVL = "NVIDIA H100 Tensor Core GPU datasheet, H100 NVL column (nvidia.com/en-us/data-center/h100)"
H200 = "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column (nvidia.com/en-us/data-center/h200)"
A100 = "NVIDIA A100 Tensor Core GPU datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf)"
L40S = "NVIDIA L40S datasheet (nvidia.com/en-us/data-center/l40s)"
L4 = "NVIDIA L4 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/l4)"
A10 = "NVIDIA A10 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/products/a10-gpu)"

# Matched against torch.cuda.get_device_name() in this order (the first name that occurs in it wins), so the
# more specific names come first: "H100 PCIe" before "H100", "L40S" before "L4", "A100" before "A10".
PEAKS: tuple[tuple[str, Peak], ...] = (
    ("H100 PCIe", Peak(51.0, 756 / 2, 1513 / 2, H100_PCIE)),
    ("H100 NVL", Peak(60.0, 835 / 2, 1671 / 2, H100_NVL)),
    ("H100", Peak(67.0, 989 / 2, 1979 / 2, H100_SXM)),
    ("H200", Peak(67.0, 989 / 2, 1979 / 2, H200)),
    ("A100", Peak(19.5, 156.0, 312.0, A100)),
    ("L40S", Peak(91.6, 183.0, 362.05, L40S)),
    ("L4", Peak(30.3, 120 / 2, 242 / 2, L4)),
    ("A10", Peak(31.2, 62.5, 125.0, A10)),
)


def arithmetic_class(fast) -> str:
    """Which peak a run with these `models.FastPath` options is bound by."""
    if fast.precision == "bf16":
        return "bf16"
    return "fp32" if fast.tf32 == "off" else "tf32"


def peak_for(device_name: str, fast, override: float | None = None) -> dict:
    """{"tflops", "class", "source"}; tflops is None when the device is not in the table and none was given."""
    cls = arithmetic_class(fast)
    if override is not None:
        return {"tflops": float(override), "class": cls, "source": "--peak-tflops"}
    for name, peak in PEAKS:
        if name.lower() in device_name.lower():
            return {"tflops": getattr(peak, cls), "class": cls, "source": f"{peak.source} ({name}, dense {cls})"}
    return {"tflops": None, "class": cls, "source": f"unknown for {device_name!r}: pass --peak-tflops"}
