"""Label-preserving augmentation of whole batches, as tensor ops on the batch's own device.

One call draws a random affine map, a smooth elastic displacement, a stroke-thickness change
and a small erased patch for every image, then applies them with one ``grid_sample``. No
per-sample Python and no host round trip, so the same code serves CPU and CUDA training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    max_rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.15)
    max_shear: float = 0.25
    max_aspect: float = 0.1  # aspect ratio within 1 +- this
    max_translate: float = 0.12  # in grid units: 2.0 spans the whole image
    elastic_alpha: float = 0.06  # displacement std, grid units, on a coarse 5x5 field
    max_thickness: float = 1.0  # blend weight towards a 3x3 dilation or erosion
    erase_prob: float = 0.3
    erase_max: int = 8  # pixels
    flip_prob: float = 0.0  # chance of a left-right mirror: objects keep their class, strokes do not

    def scaled(self, strength: float) -> AugmentConfig:
        """Every deformation's magnitude times ``strength``: 0 leaves images as they are."""
        low, high = self.scale
        return AugmentConfig(
            max_rotation_deg=self.max_rotation_deg * strength,
            scale=(1 - (1 - low) * strength, 1 + (high - 1) * strength),
            max_shear=self.max_shear * strength,
            max_aspect=min(0.5, self.max_aspect * strength),
            max_translate=self.max_translate * strength,
            elastic_alpha=self.elastic_alpha * strength,
            max_thickness=min(1.0, self.max_thickness * strength),
            erase_prob=min(1.0, self.erase_prob * strength),
            erase_max=self.erase_max,
            flip_prob=self.flip_prob,
        )


# Named sets: ``strokes`` (thickness, elastic warps) for handwriting; ``objects`` (mirrors, crops, no
# dilated outlines) for photographs of things such as clothes.
PRESETS = {
    "strokes": AugmentConfig(),
    "objects": AugmentConfig(
        max_rotation_deg=8.0, scale=(0.8, 1.1), max_shear=0.1, elastic_alpha=0.0, max_thickness=0.0, flip_prob=0.5
    ),
}


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (high - low) + low


def augment_batch(
    images: torch.Tensor, generator: torch.Generator, config: AugmentConfig = AugmentConfig()
) -> torch.Tensor:
    """Return a randomly deformed copy of ``images``, a float batch ``(B, 1, H, W)`` in [0, 1] with dark background."""
    n, _, h, w = images.shape
    device = images.device
    angle = _uniform(n, -1, 1, generator, device) * math.radians(config.max_rotation_deg)
    scale = _uniform(n, *config.scale, generator, device)
    aspect = _uniform(n, 1 - config.max_aspect, 1 + config.max_aspect, generator, device)
    shear = _uniform(n, -config.max_shear, config.max_shear, generator, device)
    shift = _uniform(2 * n, -config.max_translate, config.max_translate, generator, device).view(n, 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx, sy = 1 / (scale * aspect), aspect / scale  # the grid maps output to input coordinates
    if config.flip_prob:  # a mirror negates the input's x coordinate
        sx = sx * torch.where(torch.rand(n, generator=generator, device=device) < config.flip_prob, -1.0, 1.0)
    theta = torch.stack(
        [
            torch.stack([cos * sx, -sin * sx + shear * sx, shift[:, 0]], dim=1),
            torch.stack([sin * sy, cos * sy, shift[:, 1]], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    coarse = torch.randn(n, 2, 5, 5, generator=generator, device=device) * config.elastic_alpha
    grid = grid + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Stroke thickness: blend towards a dilation (t > 0) or an erosion (t < 0).
    t = _uniform(n, -config.max_thickness, config.max_thickness, generator, device).view(n, 1, 1, 1)
    thick = F.max_pool2d(out, 3, 1, 1)
    thin = -F.max_pool2d(-out, 3, 1, 1)
    out = torch.where(t > 0, out + t * (thick - out), out + (-t) * (thin - out))

    # Erase a small random patch from some images.
    size = (torch.rand(n, generator=generator, device=device) * config.erase_max).long().view(n, 1, 1)
    top = (torch.rand(n, generator=generator, device=device) * h).long().view(n, 1, 1)
    left = (torch.rand(n, generator=generator, device=device) * w).long().view(n, 1, 1)
    keep_all = torch.rand(n, generator=generator, device=device).view(n, 1, 1) >= config.erase_prob
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    mask = (keep_all | ~inside).unsqueeze(1)
    return out * mask
