"""Default teachers the project obtains by itself (no download), and local checkpoints.

* ``random``: the small encoder, frozen at its seeded random initialisation.
* ``procedural``: the small encoder pre-trained to classify formula-driven images
  (iterated-function-system fractals, after FractalDB): every class is one random IFS,
  its images vary in affine jitter, colour, point size and background texture. No real
  image and no test part is involved.
* ``selfsup``: the small encoder pre-trained on the training good parts of the
  modality itself, as a masked denoising autoencoder (random patches are replaced by
  noise, a light decoder restores the clean input).
* a local torchvision ResNet/WideResNet checkpoint: ``{"kind": "resnet", "arch": ...,
  "weights": path}`` (see ``backbones.load_torchvision_checkpoint``).

The comparison that chose the default is in models/README.md.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from . import corpus
from .methods.backbones import SmallEncoder, load_encoder  # noqa: F401 (re-exported)

# ---------------------------------------------------------------------------- fractals


def _ifs_system(rng: np.random.Generator, n_maps: int) -> tuple[np.ndarray, np.ndarray]:
    """Random contractive affine maps (FractalDB's sampling: rescale to singular-value sum ~ const)."""
    while True:
        a = rng.uniform(-1, 1, (n_maps, 2, 2))
        b = rng.uniform(-1, 1, (n_maps, 2))
        s = np.linalg.svd(a, compute_uv=False)
        a *= rng.uniform(1.4, 2.2) / s.sum()  # the singular-value sum sets the fractal's "fill"
        s = np.linalg.svd(a, compute_uv=False)
        if (s[:, 0] < 0.95).all():
            p = np.abs(np.linalg.det(a)) + 1e-3
            return np.concatenate([a.reshape(n_maps, 4), b], 1), p / p.sum()


def render_fractal(system, probs, size: int, rng: np.random.Generator, n_points: int = 9000) -> np.ndarray:
    maps = system.copy()
    maps[:, :4] *= rng.uniform(0.9, 1.1, (len(maps), 4))  # intra-class variation
    # Many short chains in parallel (the chaos game forgets its start after ~20 steps).
    chains, steps, burn = 150, n_points // 150 + 20, 20
    x = rng.uniform(-1, 1, (chains, 2))
    a_all, b_all = maps[:, :4].reshape(-1, 2, 2), maps[:, 4:]
    pts = []
    for t in range(steps):
        k = rng.choice(len(maps), chains, p=probs)
        x = np.einsum("nij,nj->ni", a_all[k], x) + b_all[k]
        if t >= burn:
            pts.append(x)
    pts = np.concatenate(pts)
    lo, hi = np.percentile(pts, 1, 0), np.percentile(pts, 99, 0)
    pts = (pts - lo) / np.maximum(hi - lo, 1e-6)
    ang = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = (pts - 0.5) @ rot.T * rng.uniform(0.6, 0.9) + 0.5 + rng.normal(0, 0.05, 2)
    ij = np.clip((pts * size).astype(int), 0, size - 1)
    img = np.zeros((size, size))
    np.add.at(img, (ij[:, 1], ij[:, 0]), 1.0)
    img = np.minimum(img / max(np.percentile(img[img > 0], 50), 1e-6), 1.0)
    # background: smooth random texture; foreground: random colour
    bg = F.interpolate(torch.from_numpy(rng.random((1, 3, 4, 4))), size=(size, size), mode="bicubic",
                       align_corners=False)[0].numpy() * rng.uniform(0.1, 0.5)
    fg = rng.uniform(0.3, 1.0, 3)[:, None, None]
    out = bg * (1 - img) + fg * img + rng.normal(0, 0.03, (3, size, size))
    return out.astype(np.float32)


def fractal_dataset(n_classes: int, per_class: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        system, probs = _ifs_system(rng, int(rng.integers(2, 5)))
        for _ in range(per_class):
            xs.append(render_fractal(system, probs, size, rng))
            ys.append(c)
    x = np.stack(xs)
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    return x, np.array(ys)


def pretrain_procedural(
    widths=(32, 64, 128), size: int = 64, n_classes: int = 64, per_class: int = 32, epochs: int = 12,
    seed: int = 0, log=print,
) -> SmallEncoder:
    torch.manual_seed(seed)
    t0 = time.time()
    x, y = fractal_dataset(n_classes, per_class, size, seed)
    log(f"procedural teacher: {len(x)} fractal images in {time.time() - t0:.1f}s")
    enc = SmallEncoder(tuple(widths))
    head = nn.Linear(enc.channels[2], n_classes)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(head.parameters()), lr=2e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        correct, total = 0, 0
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            xb = xt[idx]
            if torch.rand(1, generator=g) < 0.5:
                xb = xb.flip(3)
            logits = head(enc(xb)[2].mean(dim=(2, 3)))
            loss = F.cross_entropy(logits, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += int((logits.argmax(1) == yt[idx]).sum())
            total += len(idx)
        log(f"  epoch {ep + 1}/{epochs} loss {loss.item():.3f} acc {correct / total:.3f}")
    return enc.eval()


# ---------------------------------------------------------------------------- self-supervised


def pretrain_selfsup(
    normalised: torch.Tensor, widths=(32, 64, 128), epochs: int = 60, seed: int = 0, log=print,
) -> SmallEncoder:
    """Masked denoising autoencoder on normalised 3-channel inputs [N,3,H,W] of good parts."""
    torch.manual_seed(seed)
    enc = SmallEncoder(tuple(widths))
    c3 = enc.channels[2]
    dec = nn.Sequential(
        nn.ConvTranspose2d(c3, 64, 2, 2), nn.ReLU(), nn.ConvTranspose2d(64, 32, 2, 2), nn.ReLU(),
        nn.ConvTranspose2d(32, 3, 2, 2),
    )
    opt = torch.optim.AdamW(list(enc.parameters()) + list(dec.parameters()), lr=2e-3, weight_decay=1e-4)
    n, _, h, w = normalised.shape
    g = torch.Generator().manual_seed(seed)
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 16):
            xb = normalised[perm[i:i + 16]]
            if torch.rand(1, generator=g) < 0.5:
                xb = xb.flip(3)
            if torch.rand(1, generator=g) < 0.5:
                xb = xb.flip(2)
            cells = torch.rand(len(xb), 1, h // 8, w // 8, generator=g) < 0.4
            mask = F.interpolate(cells.float(), size=(h, w), mode="nearest")
            noisy = xb * (1 - mask) + mask * torch.randn(xb.shape, generator=g)
            rec = dec(enc(noisy)[2])
            loss = F.mse_loss(rec, xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (ep + 1) % max(1, epochs // 4) == 0:
            log(f"  epoch {ep + 1}/{epochs} reconstruction mse {loss.item():.4f}")
    return enc.eval()


# ---------------------------------------------------------------------------- a ResNet on the corpus


def _lr_at(step: int, total: int, peak: float) -> float:
    warm = max(1, total // 30)
    if step < warm:
        return peak * (step + 1) / warm
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Per-channel z-scores over the batch: the students feed their teachers inputs
    normalised by the training parts' per-channel statistics."""
    return (x - x.mean((0, 2, 3), keepdim=True)) / (x.std((0, 2, 3), keepdim=True) + 1e-6)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's partner is its positive, the other 2N - 2 views negatives."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = len(z1)
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def dense_nt_xent(fa: torch.Tensor, fb: torch.Tensor, theta_a: torch.Tensor, theta_b: torch.Tensor,
                  proj: nn.Module, pairs: int, temperature: float, g: torch.Generator) -> torch.Tensor:
    """The dense counterpart of ``nt_xent`` (DenseCL / PixPro's idea): a feature cell of view a
    and the point of view b that shows the same place of the image are positives; ``pairs``
    such pairs drawn at random from the whole batch, every other drawn cell a negative. So a
    location's features must tell it from other places and other images, not only the image's
    pooled features, which is what a memory bank of locations reads."""
    za, zb = proj(fa.float()), proj(fb.float())
    grid, inside = corpus.correspondence(theta_a, theta_b, za.shape[2], za.shape[3])
    zb = F.grid_sample(zb, grid, mode="bilinear", align_corners=False)
    za, zb, inside = za.permute(0, 2, 3, 1).flatten(0, 2), zb.permute(0, 2, 3, 1).flatten(0, 2), inside.flatten()
    idx = inside.nonzero().squeeze(1)
    idx = idx[torch.randperm(len(idx), generator=g, device=g.device)[:pairs].to(idx.device)]
    return nt_xent(za[idx], zb[idx], temperature)


def _dense_head(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(width, 256, 1), nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Conv2d(256, 128, 1))


def pretrain_resnet(
    out: str | Path, arch: str = "resnet18", objective: str = "simclr", steps: int | None = None,
    minutes: float | None = None, batch_size: int = 256, size: int = 128, render: int = 160,
    classes: int = 1000, lr: float = 2e-3, temperature: float = 0.2, seed: int = 0, device: str = "auto",
    resume: bool = False, init: str | Path | None = None, dense: float = 0.0, dense_pairs: int = 4096,
    log=print,
) -> Path:
    """Pre-trains a ResNet's stem and layers 1-3 (what ``ResNetEncoder`` uses) on the
    formula-driven corpus of ``corpus.py``, rendered on the fly on ``device``:

    * ``simclr``: two augmented views of every image, a projection head on the pooled
      layer-3 features, the NT-Xent loss (instance discrimination over all four families);
    * ``classify``: the fractal family alone, ``classes`` IFS classes (FractalDB-style
      formula-driven supervision), a linear head on the pooled layer-3 features.

    ``dense`` (simclr only) adds that weight times ``dense_nt_xent`` on layers 2 and 3 (a
    projection head each; ``dense_pairs`` pairs a layer and step). ``init`` starts the encoder
    from a teacher file (``save_encoder``'s) instead of at random: a longer pre-training in
    stages, each with its own schedule.

    ``steps`` fixes the length; ``minutes`` instead measures the rate over the first 40 steps
    (trained at a learning rate of about zero, the schedule's length being unknown) and fixes
    the step count that fills the time (logged: a rerun with ``--steps`` repeats the schedule
    from step 40 on). Writes ``out`` (the encoder's torchvision-named weights, float16 for the
    large tensors; ``--teacher out --resnet-arch arch``) and beside it ``out.resume``
    (encoder, head, optimiser, step) every minute; ``resume`` continues from that.
    """
    from .methods.backbones import ResNetEncoder, load_torchvision_checkpoint

    if (steps is None) == (minutes is None):
        raise ValueError("give exactly one of steps and minutes")
    if dense and objective != "simclr":
        raise ValueError("dense applies to the simclr objective")
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    out = Path(out)
    state_path = out.with_name(out.name + ".resume")
    torch.manual_seed(seed)
    enc = ResNetEncoder(arch)
    if init is not None:
        load_torchvision_checkpoint(enc, init)  # strict on the encoder's tensors; float16 ones copy back in
        log(f"started from {init}")
    enc = enc.to(dev).to(memory_format=torch.channels_last)
    width = enc.channels[2]
    if objective == "simclr":
        head = nn.Sequential(nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, 128)).to(dev)
    elif objective == "classify":
        head = nn.Linear(width, classes).to(dev)
    else:
        raise ValueError(f"unknown objective {objective!r}: simclr or classify")
    dense_heads = nn.ModuleList([_dense_head(c) for c in enc.channels[1:]] if dense else []).to(dev)
    params = list(enc.parameters()) + list(head.parameters()) + list(dense_heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    g = torch.Generator(device=dev).manual_seed(seed)
    systems = corpus.fractal_systems(classes, seed, dev)
    step, total = 0, steps
    if resume and state_path.exists():
        ck = torch.load(state_path, map_location="cpu", weights_only=False)
        enc.load_state_dict(ck["encoder"])
        head.load_state_dict(ck["head"])
        dense_heads.load_state_dict(ck.get("dense_heads", {}))
        opt.load_state_dict(ck["opt"])
        step, total = ck["step"], ck["total"]
        g.set_state(ck["rng"])
        log(f"resumed at step {step} of {total}")
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    t0 = time.time()
    last_save = t0
    probe, t_probe = 40, t0
    enc.train()
    head.train()
    dense_heads.train()
    while total is None or step < total:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total or 10**9, lr)
        with torch.no_grad():
            if objective == "simclr":
                img, _ = corpus.batch(batch_size, render, g, systems)
                (va, ta), (vb, tb) = corpus.views(img, size, g, with_crop=True), corpus.views(img, size, g, with_crop=True)
                x = _standardise(torch.cat([va, vb]))
            else:
                img, y = corpus.batch(batch_size, render, g, systems, families=("fractal",))
                x = _standardise(corpus.views(img, size, g))
        x = x.contiguous(memory_format=torch.channels_last)
        with amp:
            feats = enc(x)
            z = head(feats[2].float().mean(dim=(2, 3)))
            loss = nt_xent(z[:batch_size], z[batch_size:], temperature) if objective == "simclr" else \
                F.cross_entropy(z.float(), y, label_smoothing=0.1)
            if dense:
                dl = sum(dense_nt_xent(f[:batch_size], f[batch_size:], ta, tb, h, dense_pairs, temperature, g)
                         for f, h in zip(feats[1:], dense_heads)) / len(dense_heads)
                loss = loss + dense * dl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        now = time.time()
        if total is None and step in (probe // 2, probe):
            # the rate after the first steps (CUDA's start and cuDNN's autotuning are slow)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if step == probe // 2:
                t_probe = time.time()
            else:
                rate = (probe - probe // 2) / (time.time() - t_probe)
                total = max(probe + 1, probe + int(rate * (minutes * 60 - (time.time() - t0))))
                log(f"{rate:.2f} steps/s over steps {probe // 2}-{probe}: the run is fixed at {total} steps "
                    f"(repeat it with --steps {total})")
        if step % 50 == 0 or step == total:
            log(f"step {step}/{total} loss {loss.item():.4f} lr {opt.param_groups[0]['lr']:.2e} {now - t0:.0f}s")
        if now - last_save > 60 or step == total:
            out.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"encoder": enc.state_dict(), "head": head.state_dict(), "dense_heads": dense_heads.state_dict(),
                        "opt": opt.state_dict(),
                        "step": step, "total": total, "rng": g.get_state()}, state_path)
            save_encoder(enc, out, half=True)
            last_save = now
    log(f"pre-trained {arch} ({objective}) for {step} steps of {batch_size} in {time.time() - t0:.0f}s on {dev}")
    return out  # written with the state at the last step


def save_encoder(enc: nn.Module, path: str | Path, half: bool = False) -> Path:
    """Saves the encoder's state dict; ``half`` stores the tensors that ``round_to_half_``
    rounds (floating, 256 elements or more) as float16: the students round their frozen
    teachers to float16 values anyway, so nothing changes for them (``load_encoder`` copies
    them back into the float32 parameters); the small batch-norm tensors stay float32."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in enc.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() and v.numel() >= 256 else v) for k, v in state.items()}
    torch.save(state, path)
    return path
