"""MobileStyleGAN (Belousov, 2021) in torch: mapping network and wavelet synthesis network, FFHQ-1024.

Written from DESIGN.md §4 to load the official weights converted from the OpenVINO IR shipped in the
`random-face` package (training/convert/generator.py). Two facts of that release shape the modules:
  * demodulation uses a stored per-channel constant (not the style), so it is folded into the pointwise
    (or full) conv weight, exactly as the IR holds it;
  * the noise maps are baked constants; each layer's scalar noise weight is folded into its map.

W+ layout (23 slots, (B, 23, 512)):
  slot 0        -> conv1 (4x4)
  slot 3i+1     -> block i: IDWT upsample modulation and conv1        (i = 0..6)
  slot 3i+2     -> block i: conv2
  slot 3i+3     -> block i: wavelet head (to_img); only block 6's head (slot 21) renders the image
  slots 3, 6, 9, 12, 15, 18 feed heads that are not in the release (training-only), slot 22 is unused.
A W (B, 512) is the same code in every slot.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STYLE_DIM = 512
N_SLOTS = 23
CHANNELS = (512, 512, 512, 512, 512, 256, 128, 64)  # conv1 width, then the output width of blocks 0..6


def slot_of(block: int, part: str) -> int:
    """W+ slot used by `part` ('up', 'conv1', 'conv2', 'head') of block `block` (0..6)."""
    return 3 * block + {"up": 1, "conv1": 1, "conv2": 2, "head": 3}[part]


def as_wplus(w: torch.Tensor) -> torch.Tensor:
    """(B, 512) W -> (B, 23, 512) W+; a W+ passes through."""
    return w.unsqueeze(1).expand(-1, N_SLOTS, -1) if w.dim() == 2 else w


# ----------------------------------------------------------------------------------------------- mapping
class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weight ~ N(0, 1/lr_mul²), scaled at run time."""

    def __init__(self, c_in: int, c_out: int, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale = lr_mul / math.sqrt(c_in)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class MappingNetwork(nn.Module):
    """z (B, 512) -> w (B, 512): PixelNorm, then 8 x [EqualLinear(lr_mul 0.01), leaky-ReLU(0.2) * sqrt(2)]."""

    def __init__(self, dim: int = STYLE_DIM, n_layers: int = 8, lr_mul: float = 0.01):
        super().__init__()
        self.layers = nn.ModuleList(EqualLinear(dim, dim, lr_mul) for _ in range(n_layers))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2) * math.sqrt(2.0)
        return x


# --------------------------------------------------------------------------------------------- synthesis
def idwt_haar(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Inverse single-level Haar wavelet transform.

    low (B, C, H, W) and high (B, C, 3, H, W) with bands (LH, HL, HH) as pytorch_wavelets orders them
    -> (B, C, 2H, 2W). out[2i+a, 2j+b] = (LL + s_a*LH + s_b*HL + s_a*s_b*HH) / 2 with s_0 = 1, s_1 = -1.
    """
    lh, hl, hh = high.unbind(2)
    y = torch.stack([low + lh + hl + hh, low + lh - hl - hh, low - lh + hl - hh, low - lh - hl + hh], dim=2)
    return F.pixel_shuffle(0.5 * y.flatten(1, 2), 2)  # (B, C*4, H, W) -> (B, C, 2H, 2W)


def wavelets_to_image(freq: torch.Tensor) -> torch.Tensor:
    """12 wavelet channels (LL of R,G,B, then 3 bands per colour) at (H, W) -> RGB (B, 3, 2H, 2W)."""
    b, _, h, w = freq.shape
    return idwt_haar(freq[:, :3], freq[:, 3:].reshape(b, 3, 3, h, w))


class Modulation(nn.Module):
    """style (B, 512) -> per-channel scale (B, C, 1, 1) = (A style + b) * gain."""

    def __init__(self, channels: int, gain: float = 1.0):
        super().__init__()
        self.affine = nn.Linear(STYLE_DIM, channels)
        self.gain = gain

    def forward(self, style: torch.Tensor) -> torch.Tensor:
        return (self.affine(style) * self.gain)[:, :, None, None]


class ModulatedConv(nn.Module):
    """Full k x k modulated conv; the (constant) demodulation is folded into `weight`."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__()
        self.modulation = Modulation(c_in, gain=1.0 / math.sqrt(c_in * kernel**2))
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x * self.modulation(style), self.weight, padding=self.padding)


class ModulatedDWConv(nn.Module):
    """Depthwise-separable modulated 3x3 conv: modulate, depthwise 3x3, pointwise 1x1 (demod folded in)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.modulation = Modulation(c_in, gain=1.0 / math.sqrt(c_in * kernel**2))
        self.weight_dw = nn.Parameter(torch.randn(c_in, 1, kernel, kernel))
        self.weight_pw = nn.Parameter(torch.randn(c_out, c_in, 1, 1))
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x * self.modulation(style), self.weight_dw, padding=self.padding, groups=x.shape[1])
        return F.conv2d(x, self.weight_pw)


class StyledConv(nn.Module):
    """conv -> + baked noise -> + bias -> leaky-ReLU(0.2) (no gain)."""

    def __init__(self, c_in: int, c_out: int, size: int, depthwise: bool):
        super().__init__()
        self.conv = ModulatedDWConv(c_in, c_out) if depthwise else ModulatedConv(c_in, c_out, 3)
        self.register_buffer("noise", torch.zeros(1, 1, size, size))  # noise map x its scalar weight
        self.bias = nn.Parameter(torch.zeros(1, c_out, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x, style) + self.noise + self.bias, 0.2)


class WaveletHead(nn.Module):
    """1x1 modulated conv (no demodulation) predicting 12 Haar wavelet channels."""

    def __init__(self, c_in: int):
        super().__init__()
        self.conv = ModulatedConv(c_in, 12, 1)
        self.bias = nn.Parameter(torch.zeros(1, 12, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.conv(x, style) + self.bias


class IDWTUpsample(nn.Module):
    """Style-scale the features, read them as 4 Haar sub-bands (C/4 low, 3C/4 high) and invert: C -> C/4, x2."""

    def __init__(self, c_in: int):
        super().__init__()
        self.modulation = Modulation(c_in)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = x * self.modulation(style)
        b, c, h, w = x.shape
        return idwt_haar(x[:, : c // 4], x[:, c // 4 :].reshape(b, c // 4, 3, h, w))


class SynthesisBlock(nn.Module):
    """IDWT x2 upsample, two depthwise-separable styled convs, optional wavelet head."""

    def __init__(self, c_in: int, c_out: int, size: int, head: bool):
        super().__init__()
        self.up = IDWTUpsample(c_in)
        self.conv1 = StyledConv(c_in // 4, c_out, size, depthwise=True)
        self.conv2 = StyledConv(c_out, c_out, size, depthwise=True)
        self.to_img = WaveletHead(c_out) if head else None

    def forward(self, x: torch.Tensor, s_up: torch.Tensor, s_conv2: torch.Tensor) -> torch.Tensor:
        x = self.up(x, s_up)  # (B, C_in/4, 2H, 2W)
        x = self.conv1(x, s_up)
        return self.conv2(x, s_conv2)


class SynthesisNetwork(nn.Module):
    """W+ (B, 23, 512) or W (B, 512) -> RGB image (B, 3, 1024, 1024), roughly in [-1, 1].

    `preview_heads` holds wavelet heads we train for earlier blocks (training/train/preview_heads.py): with
    out_block=k the network stops after block k and renders 2 * 8 * 2^k px (block 4: 256, block 5: 512) at a
    fraction of the cost. Each uses its block's head slot (3k+3), unused by the released weights.
    """

    def __init__(self, channels: tuple[int, ...] = CHANNELS):
        super().__init__()
        self.channels = channels
        self.input = nn.Parameter(torch.randn(1, channels[0], 4, 4))  # learned constant
        self.conv1 = StyledConv(channels[0], channels[0], 4, depthwise=False)
        n = len(channels) - 1
        self.layers = nn.ModuleList(
            SynthesisBlock(channels[i], channels[i + 1], 8 * 2**i, head=(i == n - 1)) for i in range(n))
        self.preview_heads = nn.ModuleDict()

    @property
    def resolution(self) -> int:
        return 2 * 8 * 2 ** (len(self.layers) - 1)

    def add_preview_head(self, block: int) -> WaveletHead:
        """Create (or return) the wavelet head on block `block` (output 2 * 8 * 2^block px)."""
        if str(block) not in self.preview_heads:
            self.preview_heads[str(block)] = WaveletHead(self.channels[block + 1])
        return self.preview_heads[str(block)]

    def features(self, wplus: torch.Tensor, last_block: int) -> torch.Tensor:
        """Features after block `last_block`: (B, C, 8*2^k, 8*2^k)."""
        x = self.conv1(self.input.expand(wplus.shape[0], -1, -1, -1), wplus[:, 0])
        for i, block in enumerate(self.layers[: last_block + 1]):
            x = block(x, wplus[:, slot_of(i, "up")], wplus[:, slot_of(i, "conv2")])  # (B, C_i, 8*2^i, 8*2^i)
        return x

    def forward(self, wplus: torch.Tensor, out_block: int | None = None) -> torch.Tensor:
        wplus = as_wplus(wplus)
        last = len(self.layers) - 1
        k = last if out_block is None else out_block
        head = self.layers[last].to_img if k == last else self.preview_heads[str(k)]
        return wavelets_to_image(head(self.features(wplus, k), wplus[:, slot_of(k, "head")]))


class MobileStyleGAN(nn.Module):
    """Mapping + synthesis, with truncation around `w_avg`."""

    def __init__(self):
        super().__init__()
        self.mapping = MappingNetwork()
        self.synthesis = SynthesisNetwork()
        self.register_buffer("w_avg", torch.zeros(STYLE_DIM))

    def truncate(self, w: torch.Tensor, psi: float) -> torch.Tensor:
        return self.w_avg + psi * (w - self.w_avg)

    def forward(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor:
        return self.synthesis(self.truncate(self.mapping(z), psi))
