import torch

from mmad_models.methods import CrossModalDistillation
from mmad_models.methods.discriminator import DiscriminatorHead, perlin_masks, synthesize, train_head

TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}


def _striped(n, h=32, w=48, seed=0):
    """Good parts: a regular stripe texture with a random phase and a little noise, as rgb 0..255."""
    g = torch.Generator().manual_seed(seed)
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w)
    phase = torch.randint(0, 6, (n, 1, 1, 1), generator=g).float()
    base = 120 + 60 * torch.sin((xx + phase) * 2 * torch.pi / 6)
    return (base.expand(n, 3, h, w) + 4 * torch.randn(n, 3, h, w, generator=g)).clamp(0, 255)


def test_perlin_masks_cover_the_requested_share_and_are_seeded():
    m, soft = perlin_masks(6, (40, 60), torch.Generator().manual_seed(3), area=(0.01, 0.05))
    share = m.flatten(1).mean(1)
    assert ((share >= 0.009) & (share <= 0.051)).all()
    assert ((soft > 0) <= (m > 0)).all() and float(soft.max()) == 1.0
    again, _ = perlin_masks(6, (40, 60), torch.Generator().manual_seed(3), area=(0.01, 0.05))
    assert torch.equal(m, again)


def test_synthesize_alters_only_inside_the_mask():
    x = torch.randn(8, 3, 24, 32)
    out, m = synthesize(x, x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and m.shape == (8, 1, 24, 32)
    torch.testing.assert_close(out * (1 - m), x * (1 - m))
    assert all(float(((out[i] - x[i]).abs() * m[i]).sum()) > 0 for i in range(8))


def test_head_learns_to_point_at_altered_regions():
    """Trained on synthetic alterations of good parts, the head's logits are higher inside a
    fresh alteration (not seen in training) than on the rest of the part."""
    torch.manual_seed(0)
    model = CrossModalDistillation(("rgb",), (32, 48), TINY, normality="bank", bank_size=256,
                                   discriminate=True, head_steps=300)
    x = _striped(24)
    model.teachers["rgb"].input.fit(x)
    model.fit_normality({"rgb": x})
    assert isinstance(model.heads["rgb"], DiscriminatorHead) and float(model.heads["rgb"].std.min()) > 0
    model.eval()
    test = _striped(8, seed=5)
    xn = model.teachers["rgb"].input(test)
    altered, m = synthesize(xn, xn, torch.Generator().manual_seed(99))
    with torch.no_grad():
        view = model._bank_view("rgb", [model.normalised_features("rgb", altered)[k] for k in model.layers])
        logit = torch.nn.functional.interpolate(model.heads["rgb"](view), size=(32, 48), mode="bilinear")
    inside = (logit * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    outside = (logit * (1 - m)).flatten(1).sum(1) / (1 - m).flatten(1).sum(1)
    assert float((inside > outside).float().mean()) >= 0.75
    # the branch map of a present modality is the head's, upsampled to the input size
    maps = model.branch_maps({"rgb": test})
    assert maps[0].shape == (8, 1, 32, 48)


def test_train_head_standardises_its_inputs_with_the_clean_features():
    head = DiscriminatorHead(3)
    x = torch.randn(4, 2, 8, 8)
    feats = lambda z: torch.cat([z, 10 + 5 * z[:, :1]], 1)
    train_head(head, feats, x, steps=2, copies=1, batch=4)
    clean = feats(x)
    torch.testing.assert_close(head.mean, clean.mean((0, 2, 3), keepdim=True))
    assert not head.training


def test_alterations_fall_on_the_part_not_the_background():
    """A bright part on a noisy background: the foreground is the part (closed), and every
    altered region lies on it; a frame with no object is all foreground."""
    from mmad_models.methods.discriminator import foreground

    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(6, 3, 48, 64, generator=g)
    part = torch.zeros(48, 64, dtype=torch.bool)
    part[14:34, 12:52] = True
    x[:, :, part] += 3.0
    fg = foreground(x)
    inside = (fg[:, 0][:, part]).mean()
    outside = (fg[:, 0][:, ~part]).mean()
    assert float(inside) > 0.95 and float(outside) < 0.15
    _, m = synthesize(x, x, torch.Generator().manual_seed(1))
    assert float((m * (1 - fg)).sum()) == 0.0 and float(m.sum()) > 0
    assert float(foreground(0.3 * torch.randn(2, 3, 48, 64, generator=g)).mean()) == 1.0
