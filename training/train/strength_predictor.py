"""The seed's "projection layer": predict the edit strength C from (W+, CLIP image embedding, text direction).

    # GPU machine with internet, after clip_mapper (the mapper is frozen here)
    python -m training.train.strength_predictor --mapper runs/clip_mapper/last.pt --out runs/clip_strength
    python -m training.train.strength_predictor --evaluate --mapper runs/clip_mapper/last.pt \
        --checkpoint runs/clip_strength/last.pt --out runs/clip_strength      # learned C vs fixed C -> eval.json

The problem (seed README): a text edit W+' = W+ + C ΔW+ needs a different C for every face and prompt. The seed
trained a small layer to choose it with one loss, L = (C_I(X, X') - 0.7)^2, where C_I is the CLIP image
similarity between the input X = G(W+) and the edited X' = G(W+ + C ΔW+): the edit goes as far as it can while
keeping 70 % CLIP similarity to the input (the seed's balance between the prompt and the person).

One step: W+ from generated faces, a random prompt from PROMPTS with its ΔW+ = f(t) - f(t_source) and CLIP
direction d = normalize(t - t_source) (template-ensemble text embeddings, computed once), the image embedding
e = CLIP(X), C = P(W+, e, d), X' rendered by the frozen generator, and the loss above backpropagated through
CLIP and the generator into P. At inference e comes from the distilled E_I (clip_image_encoder.onnx).

`evaluate` compares the learned C with fixed C in {0.2, 0.4, 0.6, 0.8} on the same faces and prompts: mean and
spread of the CLIP similarity to the input (|sim - 0.7|), the CLIP score to the prompt cos(CLIP(X'), t) and its
gain over the input, and with --identity the dlib identity distance between X and X'.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from engine.atomic import write_json_atomic
from training.train.clip_runs import (ClipRunConfig, Run, build_config, common_args, read_checkpoint, images_to, load_teacher,
                                      make_source, setup_distributed)
from training.models.encoder import STYLE_DIM, USED_SLOTS, count_parameters

# attribute prompts for training and evaluation (the seed's four examples first)
PROMPTS = (
    "asian with pink wig", "blond woman with sunglasses", "fat man with beard", "man with glasses",
    "man with blue eyes and a hat", "man looking up", "woman looking left", "old man", "old woman", "young boy",
    "young girl", "child", "smiling woman", "angry man", "surprised face", "sad face", "woman with red lipstick",
    "man with a mustache", "bald man", "man with curly hair", "woman with long black hair",
    "woman with short hair", "person with freckles", "woman with blond hair", "man with grey hair",
    "person with a tan", "pale person", "person with makeup", "man with a goatee", "woman with bangs",
    "person wearing earrings", "person with a double chin", "person with big eyes", "person with thick eyebrows",
    "chubby face", "thin face", "black man", "indian woman", "east asian man", "latina woman",
)


@dataclass
class StrengthConfig(ClipRunConfig):
    mapper: str = ""  # clip_mapper checkpoint (required unless a mapper is passed in)
    hidden: int = 256
    c_max: float = 1.5
    c_init: float = 0.4
    target_sim: float = 0.7
    render_size: int = 256  # renders are area-downsampled to this before CLIP (which resizes to its input)
    out_block: int = -1  # -1: full generator; k: stop at block k with a preview head (tests / cheap runs)


PRESETS = {
    "gpu": {"steps": 4000, "batch": 16, "lr": 3e-4, "warmup": 100, "log_every": 20, "ckpt_every": 200},
    "tiny": {"clip_model": "tiny", "source": "cache", "batch": 4, "steps": 12, "lr": 1e-2, "warmup": 0,
             "log_every": 1, "ckpt_every": 1000, "hidden": 32, "render_size": 32, "out_block": 1, "threads": 2},
}


def make_config(preset: str = "gpu", **overrides) -> StrengthConfig:
    return build_config(StrengthConfig, PRESETS, preset, **overrides)


class StrengthPredictor(nn.Module):
    """P: (W+ (B, 23, 512), unit image embedding e (B, D), unit text direction d (B, D)) -> C (B,) in (0, c_max).

    Features: the face's mean residual on the used slots in w_std units (compressed by a linear layer), e, d,
    e*d and cos(e, d) (how far the face already is along the prompt); a 2-layer GELU MLP; a sigmoid scaled to
    c_max, initialised at C = c_init."""

    def __init__(self, embed_dim: int, hidden: int = 256, c_max: float = 1.5, c_init: float = 0.4,
                 w_avg: torch.Tensor | None = None, w_std: torch.Tensor | None = None):
        super().__init__()
        self.latent = nn.Linear(STYLE_DIM, 64)
        self.mlp = nn.Sequential(nn.Linear(64 + 3 * embed_dim + 1, hidden), nn.GELU(), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        p = min(max(c_init / c_max, 1e-3), 1 - 1e-3)
        nn.init.constant_(self.mlp[-1].bias, float(np.log(p / (1 - p))))
        self.c_max = c_max
        self.register_buffer("w_avg", torch.zeros(STYLE_DIM) if w_avg is None else w_avg.float().clone())
        self.register_buffer("w_std", torch.ones(STYLE_DIM) if w_std is None else w_std.float().clone())
        self.slots = list(USED_SLOTS)

    def forward(self, wplus: torch.Tensor, image_embedding: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        r = ((wplus - self.w_avg) / self.w_std)[:, self.slots].mean(1)
        e, d = image_embedding, direction
        cos = (e * d).sum(-1, keepdim=True)
        x = torch.cat([self.latent(r), e, d, e * d, cos], dim=-1)
        return torch.sigmoid(self.mlp(x)).squeeze(-1) * self.c_max


def make_render(generator, out_block: int = -1, size: int = 256):
    """Differentiable W+ -> image (B, 3, size, size) in [-1, 1] through the frozen torch generator; with
    out_block >= 0 it stops at that block and uses its preview head (random when none was trained: tests)."""
    if out_block >= 0:
        generator.synthesis.add_preview_head(out_block)
        generator.synthesis.preview_heads.requires_grad_(False)

    def render(wplus: torch.Tensor) -> torch.Tensor:
        img = generator.synthesis(wplus, out_block=None if out_block < 0 else out_block)
        return images_to(img, size)

    return render


@torch.no_grad()
def prompt_table(teacher, mapper, prompts, device) -> dict[str, torch.Tensor]:
    """Per prompt: unit text embedding t, unit direction d and ΔW+ = f(t) - f(t_source)."""
    from engine.text_edit import SOURCE_PROMPT

    t = teacher.prompt_embeddings(list(prompts)).to(device)
    s = teacher.prompt_embeddings([SOURCE_PROMPT]).to(device)
    mapper = mapper.to(device)
    return {"text": t, "direction": F.normalize(t - s, dim=-1), "delta": mapper(t) - mapper(s)}


def train(cfg: StrengthConfig, out: Path, generator=None, teacher=None, mapper=None, limit: int | None = None,
          prompts=PROMPTS) -> dict:
    from training.train.clip_mapper import load_mapper

    rank, world, _, device = setup_distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    teacher = (teacher or load_teacher(cfg, device)).to(device)
    mapper = (mapper or load_mapper(cfg.mapper)).to(device).eval().requires_grad_(False)
    if generator is None:
        from training.convert.generator import load_weights
        generator = load_weights()
    generator = generator.to(device).eval().requires_grad_(False)
    render = make_render(generator, cfg.out_block, cfg.render_size)
    if cfg.source == "cache":
        source = make_source(cfg, generator, device, rank, world, limit)
        next_wplus = lambda n: source.batch(n)[2]  # noqa: E731
    else:  # only W+ is needed: sample it with the encoder-data recipe, no render
        from training.data.samples import SampleRecipe, sample_wplus
        source, recipe = None, SampleRecipe()
        w_rng = np.random.default_rng([cfg.seed, rank, 29])
        mapping = lambda z: generator.mapping(torch.from_numpy(z).to(device)).cpu().numpy()  # noqa: E731
        w_avg_np, w_std_np = generator.w_avg.cpu().numpy(), mapper.w_std.cpu().numpy()
        next_wplus = lambda n: torch.from_numpy(sample_wplus(w_rng, mapping, w_avg_np, w_std_np, n, recipe)[0])  # noqa: E731
    table = prompt_table(teacher, mapper, prompts, device)
    model = StrengthPredictor(teacher.embed_dim, cfg.hidden, cfg.c_max, cfg.c_init, mapper.w_avg, mapper.w_std)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = Run(out, cfg, {"model": model}, opt, rank, device)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    if rank == 0:
        print(f"strength predictor {count_parameters(model) / 1e3:.1f} k parameters, {len(prompts)} prompts, "
              f"target CLIP similarity {cfg.target_sim}, teacher {teacher.name}, {world} process(es) on {device}",
              flush=True)
    rng = np.random.default_rng([cfg.seed, rank, 23, run.step])
    while not run.done():
        run.set_lr()
        wplus = next_wplus(cfg.batch).to(device)
        k = torch.from_numpy(rng.integers(0, len(prompts), cfg.batch)).to(device)
        with torch.no_grad():
            e = teacher.encode_images(render(wplus))
        c = net(wplus, e, table["direction"][k])
        edited = render(wplus + c[:, None, None] * table["delta"][k])
        e2 = teacher.encode_images(edited)
        sim = (e * e2).sum(-1)
        loss = (sim - cfg.target_sim).pow(2).mean()
        run.optimise(loss, None, clip_norm=None)
        score = (e2 * table["text"][k]).sum(-1)
        parts = {"loss": loss.detach(), "sim": sim.mean().detach(), "c": c.mean().detach(),
                 "c_std": c.std().detach() if len(c) > 1 else torch.zeros(()), "clip_score": score.mean().detach()}
        if run.end_step(parts, cfg.batch * world):
            break
    return run.finish()


@torch.no_grad()
def evaluate(predictor, mapper, teacher, render, wplus: torch.Tensor, prompts=PROMPTS[:8],
             fixed=(0.2, 0.4, 0.6, 0.8), target_sim: float = 0.7, identity=None) -> dict:
    """Learned C vs fixed C on every (face, prompt) pair. Returns {method: metrics}; `identity`: an object with
    .distance(bgr_a, bgr_b) (training.evaluate.dlib_judge.DlibIdentity) to add the dlib identity distance."""
    device = wplus.device
    table = prompt_table(teacher, mapper, prompts, device)
    x = render(wplus)
    e = teacher.encode_images(x)
    rows: dict[str, dict[str, list]] = {}
    for j in range(len(prompts)):
        d, delta, t = table["direction"][j:j + 1], table["delta"][j:j + 1], table["text"][j:j + 1]
        learned = predictor(wplus, e, d.expand(len(wplus), -1))
        for name, c in [("learned", learned)] + [(f"fixed {v}", torch.full_like(learned, v)) for v in fixed]:
            x2 = render(wplus + c[:, None, None] * delta)
            e2 = teacher.encode_images(x2)
            r = rows.setdefault(name, {})
            r.setdefault("sim", []).extend((e * e2).sum(-1).tolist())
            r.setdefault("clip_score", []).extend((e2 @ t.T).squeeze(-1).tolist())
            r.setdefault("clip_gain", []).extend(((e2 - e) @ t.T).squeeze(-1).tolist())
            r.setdefault("c", []).extend(c.tolist())
            if identity is not None:
                r.setdefault("id_dist", []).extend(identity.distance(_bgr(a), _bgr(b))[0] for a, b in zip(x, x2))
    out = {}
    for name, r in rows.items():
        sim = np.array(r["sim"])
        out[name] = {"mean_c": float(np.mean(r["c"])), "sim_mean": float(sim.mean()), "sim_std": float(sim.std()),
                     "sim_abs_err": float(np.abs(sim - target_sim).mean()),
                     "clip_score": float(np.mean(r["clip_score"])), "clip_gain": float(np.mean(r["clip_gain"])),
                     **({"id_dist": float(np.mean(r["id_dist"]))} if "id_dist" in r else {})}
    return out


def _bgr(img: torch.Tensor) -> np.ndarray:
    rgb = ((img.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(rgb[..., ::-1])


def load_predictor(path: str | Path) -> StrengthPredictor:
    state = read_checkpoint(path)
    cfg = StrengthConfig(**state["config"])
    embed_dim = (state["model"]["mlp.0.weight"].shape[1] - 65) // 3
    model = StrengthPredictor(embed_dim, cfg.hidden, cfg.c_max, cfg.c_init)
    model.load_state_dict(state["model"])
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="gpu")
    common_args(ap)
    ap.add_argument("--mapper", help="clip_mapper checkpoint (last.pt)")
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--out-block", type=int)
    for name in ("c_max", "c_init", "target_sim"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=float)
    ap.add_argument("--evaluate", action="store_true", help="compare learned vs fixed C; writes <out>/eval.json")
    ap.add_argument("--checkpoint", help="--evaluate: the strength checkpoint (default <out>/last.pt)")
    ap.add_argument("--faces", type=int, default=64, help="--evaluate: generated faces (x 8 prompts)")
    ap.add_argument("--identity", action="store_true", help="--evaluate: add the dlib identity distance")
    args = vars(ap.parse_args(argv))
    out, preset = Path(args.pop("out")), args.pop("preset")
    do_eval, ckpt, n_faces, use_id = (args.pop(k) for k in ("evaluate", "checkpoint", "faces", "identity"))
    cfg = make_config(preset, **args)
    if not do_eval:
        train(cfg, out)
        if dist.is_initialized():
            dist.destroy_process_group()
        return
    from training.train.clip_mapper import load_mapper
    from training.convert.generator import load_weights
    from training.data.samples import SampleRecipe, sample_wplus

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    teacher, mapper = load_teacher(cfg, device), load_mapper(cfg.mapper).to(device)
    predictor = load_predictor(ckpt or out / "last.pt").to(device)
    g = load_weights().to(device).eval().requires_grad_(False)
    mapping = lambda z: g.mapping(torch.from_numpy(z).to(device)).cpu().numpy()  # noqa: E731
    wplus, _ = sample_wplus(np.random.default_rng(999), mapping, g.w_avg.cpu().numpy(),
                            mapper.w_std.cpu().numpy(), n_faces, SampleRecipe(psi_min=0.5, psi_max=0.9))
    identity = None
    if use_id:
        from training.evaluate.dlib_judge import DlibIdentity
        identity = DlibIdentity()
    render = make_render(g, cfg.out_block, cfg.render_size)
    results = {}
    for i in range(0, n_faces, 8):
        part = evaluate(predictor, mapper, teacher, render, torch.from_numpy(wplus[i:i + 8]).to(device),
                        target_sim=cfg.target_sim, identity=identity)
        for name, m in part.items():
            for key, v in m.items():
                results.setdefault(name, {}).setdefault(key, []).append(v)
    summary = {name: {k: round(float(np.mean(v)), 4) for k, v in m.items()} for name, m in results.items()}
    write_json_atomic(out / "eval.json", {"teacher": teacher.name, "faces": n_faces, "prompts": list(PROMPTS[:8]),
                                         "results": summary})
    for name, m in summary.items():
        print(f"{name:<10} " + "  ".join(f"{k} {v}" for k, v in m.items()))


if __name__ == "__main__":
    main()
