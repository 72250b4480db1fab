"""Inversion encoder modules: E_I (image -> embedding) and the mapper f (embedding -> W+ residual around w_avg).

Interface shared with the CLIP-distilled encoder of the text issue (engine code plugs into either):
  * E_I: `ImageEncoder` takes RGB images in [0, 1], (B, 3, S, S), an FFHQ-style aligned face crop resized to S,
    and returns an L2-normalised embedding (B, EMBED_DIM) — the same kind of vector as a CLIP image embedding
    (unit norm, 512-d like OpenCLIP ViT-B/32).
  * f: `LatentMapper` takes that embedding and returns a W+ residual (B, 23, 512) around w_avg; the inverted
    latent is w_avg + residual. Residuals are predicted in units of `w_std` (per-dimension std of mapped W) and
    have two parts: one W residual shared by every slot plus a small per-slot correction (zero on slots the
    released generator does not use), which keeps codes close to W (DESIGN.md §4). No final activation.
  * `InversionEncoder` = E_I + f + the w_avg/w_std buffers; its ONNX export has input `image` and outputs
    `wplus` (B, 23, 512) and `embedding` (B, 512). Optionally (`thumb_size` > 0) a linear path from a small
    thumbnail of the crop adds its own residual (`ThumbnailRegressor`, initialised by closed-form ridge
    regression): on CPU-scale training budgets it is as accurate as the CNN and generalises better to photos.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

STYLE_DIM = 512
N_SLOTS = 23
EMBED_DIM = 512
# slots 0, 3i+1, 3i+2 (i = 0..6) and 21 (the image head); 3, 6, ..., 18 and 22 are unused
USED_SLOTS = tuple(sorted({0, 21} | {s for s in range(1, 21) if s % 3}))
# ImageNet statistics: the input normalisation of timm backbones (applied inside the model)
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class EncoderConfig:
    backbone: str = "efficientformerv2_s0"  # any timm model whose forward_features gives (B, C, H, W); ENCODER.md
    input_size: int = 160
    embed_dim: int = EMBED_DIM
    spatial_channels: int = 64  # 1x1 reduction of the last feature map before flattening (keeps layout)
    mapper_hidden: int = 1024
    mapper_layers: int = 2
    slot_rank: int = 32  # per-slot correction: hidden -> 23 x rank -> 512 per slot
    delta_scale: float = 0.25  # initial scale of the per-slot correction relative to the shared W residual
    thumb_size: int = 0  # > 0: add the linear path from a thumb_size^2 thumbnail (0: off, the first models)
    thumb_rank: int = 256  # rank of that linear map (thumbnail pixels -> rank -> used slots x 512)


class ImageEncoder(nn.Module):
    """E_I: timm backbone (random init here) -> last feature map -> 1x1 reduce -> flatten -> linear -> L2 norm."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        import timm

        kwargs = {"img_size": cfg.input_size} if cfg.backbone.startswith("efficientformer") else {}
        self.backbone = timm.create_model(cfg.backbone, pretrained=False, num_classes=0, global_pool="", **kwargs)
        with torch.no_grad():
            feat = self.backbone.forward_features(torch.zeros(1, 3, cfg.input_size, cfg.input_size))
        if feat.dim() == 3:  # token output (B, N, C): not used by the default backbones
            raise ValueError(f"{cfg.backbone}: expected a (B, C, H, W) feature map, got {tuple(feat.shape)}")
        c, h, w = feat.shape[1:]
        self.reduce = nn.Sequential(nn.Conv2d(c, cfg.spatial_channels, 1), nn.BatchNorm2d(cfg.spatial_channels),
                                    nn.GELU())
        self.project = nn.Linear(cfg.spatial_channels * h * w + c, cfg.embed_dim)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.input_size = cfg.input_size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feat = self.backbone.forward_features((image - self.mean) / self.std)
        spatial = self.reduce(feat).flatten(1)
        pooled = feat.mean(dim=(2, 3))
        e = self.project(torch.cat([spatial, pooled], dim=1))
        return F.normalize(e, dim=1)


class LatentMapper(nn.Module):
    """f: unit embedding (B, D) -> W+ residual (B, 23, 512) in W units (multiplied by w_std inside)."""

    def __init__(self, cfg: EncoderConfig, w_std: torch.Tensor | None = None):
        super().__init__()
        d, h = cfg.embed_dim, cfg.mapper_hidden
        layers: list[nn.Module] = []
        for i in range(cfg.mapper_layers):
            layers += [nn.Linear(d if i == 0 else h, h), nn.LayerNorm(h), nn.GELU()]
        self.trunk = nn.Sequential(*layers)
        self.w_head = nn.Linear(h, STYLE_DIM)
        self.slot_code = nn.Linear(h, N_SLOTS * cfg.slot_rank)
        self.slot_basis = nn.Parameter(torch.randn(N_SLOTS, cfg.slot_rank, STYLE_DIM) / cfg.slot_rank ** 0.5)
        self.delta_scale = nn.Parameter(torch.tensor(float(cfg.delta_scale)))
        mask = torch.zeros(N_SLOTS, 1)
        mask[list(USED_SLOTS)] = 1.0
        self.register_buffer("slot_mask", mask)
        self.register_buffer("w_std", torch.ones(STYLE_DIM) if w_std is None else w_std.float().clone())
        self.rank = cfg.slot_rank
        self.embed_scale = d ** 0.5
        nn.init.zeros_(self.w_head.bias)
        nn.init.normal_(self.w_head.weight, std=0.01)
        nn.init.normal_(self.slot_code.weight, std=0.01)
        nn.init.zeros_(self.slot_code.bias)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.trunk(embedding * self.embed_scale)
        base = self.w_head(x)  # (B, 512)
        code = self.slot_code(x).view(-1, N_SLOTS, self.rank)
        delta = torch.einsum("bsr,srd->bsd", code, self.slot_basis) * self.slot_mask * self.delta_scale
        return (base.unsqueeze(1) + delta) * self.w_std


class ThumbnailRegressor(nn.Module):
    """Linear path: image (B, 3, S, S) -> area-pooled thumbnail (B, 3, T, T) -> standardised pixels -> rank-r
    linear map -> W+ residual (B, 23, 512) on the used slots, in W units (multiplied by w_std inside).
    A learned "eigenface" regressor; `fit_ridge` sets it to the reduced-rank ridge solution."""

    def __init__(self, cfg: EncoderConfig, w_std: torch.Tensor | None = None):
        super().__init__()
        n_in, n_out = 3 * cfg.thumb_size ** 2, len(USED_SLOTS) * STYLE_DIM
        self.size = cfg.thumb_size
        self.register_buffer("pixel_mean", torch.zeros(n_in))
        self.register_buffer("pixel_std", torch.ones(n_in))
        self.down = nn.Linear(n_in, cfg.thumb_rank, bias=False)
        self.up = nn.Linear(cfg.thumb_rank, n_out)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.register_buffer("w_std", torch.ones(STYLE_DIM) if w_std is None else w_std.float().clone())
        place = torch.zeros(N_SLOTS, len(USED_SLOTS))  # used slot i -> W+ slot USED_SLOTS[i]
        place[list(USED_SLOTS), torch.arange(len(USED_SLOTS))] = 1.0
        self.register_buffer("slot_place", place, persistent=False)

    def thumbnail(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> raw thumbnail pixels (B, 3 T^2)."""
        return F.adaptive_avg_pool2d(image, self.size).flatten(1)

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> standardised thumbnail pixels (B, 3 T^2)."""
        return (self.thumbnail(image) - self.pixel_mean) / self.pixel_std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        r = self.up(self.down(self.pixels(image))).view(-1, len(USED_SLOTS), STYLE_DIM) * self.w_std
        return torch.einsum("tu,bud->btd", self.slot_place, r)  # (B, 23, 512), zero on unused slots

    @torch.no_grad()
    def fit_ridge(self, thumbnails: torch.Tensor, residuals: torch.Tensor, lam: float = 1000.0) -> float:
        """Closed-form reduced-rank ridge regression. thumbnails (N, 3 T^2) from `thumbnail`; residuals
        (N, 16, 512) = (W+ - w_avg) on the used slots in w_std units. Returns the training MSE."""
        x = thumbnails.double()
        self.pixel_mean.copy_(x.mean(0).float())
        self.pixel_std.copy_((x.std(0) + 1e-3).float())
        x = (x - x.mean(0)) / (x.std(0) + 1e-3)
        y = residuals.flatten(1).double()
        y_mean = y.mean(0)
        gram = x.T @ x
        w = torch.linalg.solve(gram + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T @ (y - y_mean))
        # reduced rank: the top right singular vectors of the fitted values x @ w, from the small factor
        # L^T w (gram = L L^T), which has the same ones: (x w)^T (x w) = (L^T w)^T (L^T w)
        chol = torch.linalg.cholesky(gram + 1e-6 * gram.diagonal().mean() * torch.eye(x.shape[1], dtype=x.dtype))
        _, _, vh = torch.linalg.svd(chol.T @ w, full_matrices=False)
        v = vh[: self.down.out_features].T  # (n_out, rank)
        self.down.weight.copy_((w @ v).T.float())
        self.up.weight.copy_(v.float())
        self.up.bias.copy_(y_mean.float())
        return float(((x @ w @ v @ v.T + y_mean - y) ** 2).mean())

    @torch.no_grad()
    def set_truncated(self, down: torch.Tensor, up: torch.Tensor) -> None:
        """Set this path's map to another path's map up (n_out, R) @ down (R, n_in): exactly if this rank is >= R
        (the extra directions start at zero), else its best approximation at this rank: the top singular
        directions of the product (Eckart-Young)."""
        qa, ra = torch.linalg.qr(down.double().T)  # down^T = qa ra, (n_in, R)
        qb, rb = torch.linalg.qr(up.double())  # up = qb rb, (n_out, R)
        u, s, vh = torch.linalg.svd(rb @ ra.T)  # up @ down = qb (u s vh) qa^T, so only an R x R SVD
        k = min(self.down.out_features, len(s))
        root = s[:k].sqrt()
        self.down.weight.zero_()
        self.up.weight.zero_()
        self.down.weight[:k] = (root[:, None] * (vh[:k] @ qa.T)).float()
        self.up.weight[:, :k] = (qb @ u[:, :k] * root).float()


class InversionEncoder(nn.Module):
    """E_I + f (+ the optional thumbnail path): aligned face (B, 3, S, S) RGB in [0, 1] -> (W+ (B, 23, 512),
    embedding (B, D))."""

    def __init__(self, cfg: EncoderConfig, w_avg: torch.Tensor | None = None, w_std: torch.Tensor | None = None):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoder(cfg)
        self.mapper = LatentMapper(cfg, w_std)
        self.thumb = ThumbnailRegressor(cfg, w_std) if cfg.thumb_size > 0 else None
        self.register_buffer("w_avg", torch.zeros(STYLE_DIM) if w_avg is None else w_avg.float().clone())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.image_encoder(image)
        wplus = self.w_avg + self.mapper(e)
        if self.thumb is not None:
            wplus = wplus + self.thumb(image)
        return wplus, e


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------------- losses
def latent_losses(pred: torch.Tensor, target: torch.Tensor, w_avg: torch.Tensor, w_std: torch.Tensor,
                  ) -> dict[str, torch.Tensor]:
    """On the slots the generator uses: MSE of the residual in w_std units, 1 - cos of residuals, and the
    spread of the predicted slots around their mean (how far the code is from a single W)."""
    slots = list(USED_SLOTS)
    rp, rt = (pred - w_avg)[:, slots], (target - w_avg)[:, slots]
    mse = ((rp - rt) / w_std).pow(2).mean()
    cos = 1.0 - F.cosine_similarity(rp, rt, dim=-1).mean()
    spread = ((rp - rp.mean(dim=1, keepdim=True)) / w_std).pow(2).mean()
    return {"mse": mse, "cos": cos, "spread": spread}


def _gauss_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return (g / g.sum())


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term of images in [0, 1] (gaussian window, valid region)."""
    c = x.shape[1]
    kx = win.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = win.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    blur = lambda t: F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)  # noqa: E731
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim.mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale SSIM (Wang et al. 2003) of (B, 3, H, W) images in [0, 1], H >= 32 * 2**(scales-1) / 4;
    per-image values (B,). Contrast terms are clamped at 0 (the usual stabilisation)."""
    win = _gauss_window(device=x.device)
    weights = torch.tensor(MS_WEIGHTS[:scales], device=x.device)
    weights = weights / weights.sum()
    out = torch.ones(x.shape[0], device=x.device)
    for i in range(scales):
        ssim, cs = _ssim_parts(x, y, win)
        if i == scales - 1:
            out = out * ssim.clamp_min(1e-6) ** weights[i]
        else:
            out = out * cs.clamp_min(1e-6) ** weights[i]
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return out


def image_losses(render: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pixel L1 and 1 - MS-SSIM of a rendered reconstruction and its target, both (B, 3, 256+, 256+) in [-1, 1]."""
    x, y = (render.clamp(-1, 1) + 1) / 2, (target + 1) / 2
    return {"l1": (x - y).abs().mean(), "msssim": 1.0 - ms_ssim(x, y).mean()}
