"""How compressed weights are stored in a safetensors checkpoint: ternary codes packed 2 bits each (4 per
uint8), and word embeddings in fp16, int8 with one scale per row, or fp32. A model that rounds its in-memory
weights the same way before saving reloads with identical predictions (core.models.bitbert does)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """int8 {-1,0,1} of any shape -> uint8 (ceil(n/4),), 2 bits per weight, first weight in the low bits."""
    flat = (codes.flatten().to(torch.int16) + 1).to(torch.uint8)  # {0,1,2}
    flat = F.pad(flat, (0, (-flat.numel()) % 4)).view(-1, 4)
    return flat[:, 0] | flat[:, 1] << 2 | flat[:, 2] << 4 | flat[:, 3] << 6


def unpack_ternary(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    n = int(np.prod(shape))
    fields = torch.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], dim=1).flatten()[:n]  # (n,)
    return (fields.to(torch.int8) - 1).view(shape)


def quantize_embedding(w: torch.Tensor, how: str) -> dict[str, torch.Tensor]:
    if how == "fp16":
        return {"fp16": w.half()}
    if how == "int8":
        scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-8)  # (V, 1): one scale per row
        return {"int8": (w / scale).round().clamp(-127, 127).to(torch.int8), "scale": scale.float()}
    if how == "fp32":
        return {"fp32": w.float()}
    raise ValueError(f"embeddings must be fp16, int8 or fp32, not {how!r}")


def dequantize_embedding(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    if "fp16" in parts:
        return parts["fp16"].float()
    if "int8" in parts:
        return parts["int8"].float() * parts["scale"]
    return parts["fp32"]
