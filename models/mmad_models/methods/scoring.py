"""In-graph scoring: per-branch maps -> normalised, fused, smoothed anomaly map and image score."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# the anomaly map's Gaussian smoothing, in pixels at 256 px (scaled to the input's shorter side):
# the reverse-distillation literature's 4; a method may default to another (Method.default_map_sigma)
MAP_SIGMA = 4.0


def map_sigma_px(map_sigma: float, size: tuple[int, int]) -> float:
    """The smoothing's standard deviation in pixels of an input of ``size`` for ``map_sigma``
    pixels at 256 px: scaled to the shorter side, 0.5 px at least; 0 = no smoothing."""
    if map_sigma < 0:
        raise ValueError(f"the map's smoothing is 0 (none) or a positive sigma, got {map_sigma}")
    return 0.0 if map_sigma == 0 else max(0.5, float(map_sigma) * min(size) / 256.0)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius ceil(4 sigma); sigma 0: the identity [1]."""
    if sigma == 0:
        return torch.ones(1)
    radius = max(1, math.ceil(4 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


class MapScorer(nn.Module):
    """Upsamples each branch's map to the input size, standardises it with the image-score
    statistics of validation good parts, fuses the branches, smooths with a Gaussian,
    scores by max.

    Fusion ``max`` keeps an anomaly that only one modality sees at full strength (the
    other branches cannot dilute it); ``sum`` adds the standardised maps, as CRD does.
    """

    def __init__(self, n_branches: int, size: tuple[int, int], map_sigma: float = MAP_SIGMA, fusion: str = "max"):
        super().__init__()
        if fusion not in ("max", "sum"):
            raise ValueError("fusion is 'max' or 'sum'")
        self.size = tuple(size)
        self.fusion = fusion
        # map_sigma px at 256 px, scaled to the input size (map_sigma_px)
        self.sigma = map_sigma_px(map_sigma, size)
        k = gaussian_kernel(self.sigma)
        self.register_buffer("kx", k.view(1, 1, 1, -1))
        self.register_buffer("ky", k.view(1, 1, -1, 1))
        self.register_buffer("mean", torch.zeros(n_branches))
        self.register_buffer("std", torch.ones(n_branches))

    def upsample(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.interpolate(m, size=self.size, mode="bilinear", align_corners=False) for m in maps]

    def smooth(self, m: torch.Tensor) -> torch.Tensor:
        r = self.kx.shape[-1] // 2
        if r == 0:
            return m
        m = F.conv2d(F.pad(m, (r, r, 0, 0), mode="replicate"), self.kx)
        return F.conv2d(F.pad(m, (0, 0, r, r), mode="replicate"), self.ky)

    def fit(self, branch_maps: list[torch.Tensor]) -> None:
        """branch_maps: per branch, the upsampled [N,1,H,W] maps of validation good parts.

        Each branch is standardised by the mean and std of *its own image score* (the max
        of its smoothed map) over these good parts, so that a good part's peak means the
        same in every branch: a branch whose maps are noisy on good parts (a weak modality)
        then cannot out-shout the others in the fused max, while a peak that one branch
        alone sees far above its own good parts keeps its strength. (Standardising by the
        pixel statistics instead let the weak branch's peaks on good parts win the max: on
        the simulator's parts rgb+xyz scored below rgb alone.) With one part, or none
        above another, the pixel statistics stand in.
        """
        for i, m in enumerate(branch_maps):
            peaks = self.smooth(m).flatten(1).amax(dim=1)
            if len(peaks) >= 2 and float(peaks.std()) > 1e-8:
                self.mean[i] = peaks.mean()
                self.std[i] = peaks.std()
            else:
                self.mean[i] = m.mean()
                self.std[i] = m.std().clamp_min(1e-8)

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_upsampled(self.upsample(maps))

    def leads(self, ups: list[torch.Tensor], k: int) -> torch.Tensor:
        """[B,1,H,W] bool: where branch ``k``'s standardised, smoothed map is at least every
        other branch's (everywhere for a single branch): the branch the fused map comes from."""
        z = [self.smooth((m - self.mean[i]) / self.std[i]) for i, m in enumerate(ups)]
        others = [zi for i, zi in enumerate(z) if i != k]
        if not others:
            return torch.ones_like(z[k], dtype=torch.bool)
        return z[k] >= torch.cat(others, dim=1).amax(dim=1, keepdim=True)

    def forward_upsampled(self, ups: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.cat([(m - self.mean[i]) / self.std[i] for i, m in enumerate(ups)], dim=1)
        fused = z.amax(dim=1, keepdim=True) if self.fusion == "max" else z.sum(dim=1, keepdim=True)
        amap = self.smooth(fused)
        return amap, amap.flatten(1).amax(dim=1)
