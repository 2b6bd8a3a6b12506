"""The formula-driven corpus and the ResNet pre-training on it (tiny sizes, CPU)."""

import pytest
import torch

from mmad_models import corpus
from mmad_models.methods.backbones import ResNetEncoder, load_encoder, load_torchvision_checkpoint
from mmad_models.teachers import nt_xent, pretrain_resnet


def test_the_corpus_renders_every_family_at_its_size_in_range_and_reproducibly():
    systems = corpus.fractal_systems(5, seed=0, device="cpu")
    a, labels = corpus.batch(8, 40, torch.Generator().manual_seed(3), systems)
    b, _ = corpus.batch(8, 40, torch.Generator().manual_seed(3), systems)
    assert a.shape == (8, 3, 40, 40) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    # two images of each family, the fractals (last) labelled with their class
    assert (labels[:6] == -1).all() and ((labels[6:] >= 0) & (labels[6:] < 5)).all()
    # each image has structure (not a constant), and the families differ from each other
    assert (a.flatten(1).std(1) > 0.01).all()
    assert -2.0 < float(a.min()) and float(a.max()) < 3.0  # about [0, 1]; the spectral noise's tails go further
    v = corpus.views(a, 24, torch.Generator().manual_seed(0))
    assert v.shape == (8, 3, 24, 24) and torch.isfinite(v).all()


def test_nt_xent_is_low_when_each_view_matches_its_partner_only():
    z = torch.eye(4) * 10
    assert float(nt_xent(z, z, 0.05)) < 1e-3
    assert float(nt_xent(z, z.roll(1, 0), 0.05)) > 5


@pytest.mark.parametrize("objective", ["simclr", "classify"])
def test_pretraining_writes_a_teacher_train_loads_and_resumes_where_it_stopped(tmp_path, objective):
    out = tmp_path / f"{objective}.pt"
    before = {k: v.clone() for k, v in ResNetEncoder("resnet18").state_dict().items()}
    lines = []
    pretrain_resnet(out, objective=objective, steps=2, batch_size=4, size=32, render=40, classes=3, device="cpu",
                    log=lines.append)
    assert any("for 2 steps" in m for m in lines)
    enc = ResNetEncoder("resnet18")
    assert load_torchvision_checkpoint(enc, out) == []
    assert any(not torch.equal(before[k], v) for k, v in enc.state_dict().items() if v.is_floating_point())
    # the large tensors stored as float16, as the shipped teachers
    assert torch.load(out, weights_only=True)["layer3.0.conv1.weight"].dtype == torch.float16
    t = load_encoder({"kind": "resnet", "arch": "resnet18", "weights": str(out)})
    assert [f.shape[1] for f in t(torch.rand(1, 3, 32, 32))] == [64, 128, 256]
    # a run stopped at 2 of 3 steps continues from its state file, not from the start
    state = torch.load(out.with_name(out.name + ".resume"), weights_only=False)
    state["total"] = 3
    torch.save(state, out.with_name(out.name + ".resume"))
    lines.clear()
    pretrain_resnet(out, objective=objective, steps=3, batch_size=4, size=32, render=40, classes=3, device="cpu",
                    resume=True, log=lines.append)
    assert lines[0] == "resumed at step 2 of 3" and any("for 3 steps" in m for m in lines)


def test_pretraining_takes_exactly_one_length():
    with pytest.raises(ValueError, match="exactly one"):
        pretrain_resnet("unused.pt", steps=2, minutes=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        pretrain_resnet("unused.pt")


def test_the_pretrain_command_writes_the_teacher_and_refuses_two_lengths(tmp_path, capsys):
    from mmad_models.cli import main

    out = tmp_path / "t.pt"
    assert main(["pretrain", "--out", str(out), "--steps", "1", "--batch", "2", "--size", "32", "--classes", "2",
                 "--objective", "classify", "--device", "cpu", "--threads", "1"]) == 0
    assert out.exists() and f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["pretrain", "--out", str(out), "--steps", "1", "--minutes", "1"])
    with pytest.raises(SystemExit, match="--dense applies to --objective simclr"):
        main(["pretrain", "--out", str(out), "--steps", "1", "--objective", "classify", "--dense", "1"])
    with pytest.raises(SystemExit, match="no such teacher file"):
        main(["pretrain", "--out", str(out), "--steps", "1", "--init", str(tmp_path / "missing.pt")])


def test_correspondence_finds_in_one_view_the_place_a_cell_of_the_other_shows():
    g = torch.Generator().manual_seed(1)
    # a smooth image whose value tells the place: x in channel 0, y in channel 1
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 200), torch.linspace(-1, 1, 200), indexing="ij")
    img = torch.stack([xs, ys, xs * ys]).expand(6, 3, 200, 200).contiguous()
    _, ta = corpus.views(img, 64, g, with_crop=True)
    _, tb = corpus.views(img, 64, g, with_crop=True)
    va, vb = corpus.crop(img, ta, 64), corpus.crop(img, tb, 64)
    fa = torch.nn.functional.avg_pool2d(va, 8)  # an 8 x 8 grid of cells, as a stride-8 feature map
    grid, inside = corpus.correspondence(ta, tb, 8, 8)
    at_b = torch.nn.functional.grid_sample(vb, grid, mode="bilinear", align_corners=False)
    assert inside.any() and not inside.all()  # the views overlap only in part
    # where a cell of view a is inside view b, view b shows the same place there
    err = (fa - at_b).abs().amax(1)[inside]
    assert float(err.max()) < 0.05
    # the rule is not trivially true: another image's crop does not match
    wrong = torch.nn.functional.grid_sample(vb.roll(1, 0), grid, mode="bilinear", align_corners=False)
    assert float((fa - wrong).abs().amax(1)[inside].mean()) > 0.1


def test_dense_nt_xent_is_low_when_the_matching_places_agree():
    from mmad_models.teachers import dense_nt_xent

    g = torch.Generator().manual_seed(0)
    theta = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]).expand(4, 2, 3).contiguous()  # the whole image, twice
    f = torch.randn(4, 16, 6, 6, generator=g) * 10
    ident = torch.nn.Identity()
    same = dense_nt_xent(f, f, theta, theta, ident, 64, 0.05, g)
    moved = dense_nt_xent(f, f.roll(2, 3), theta, theta, ident, 64, 0.05, g)
    assert float(same) < 0.05
    assert float(moved) > 2


def test_a_dense_pretraining_starts_from_a_teacher_and_changes_it(tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    pretrain_resnet(first, steps=1, batch_size=4, size=32, render=40, device="cpu", log=lambda m: None)
    lines = []
    pretrain_resnet(second, steps=1, batch_size=4, size=32, render=40, device="cpu", init=first, dense=1.0,
                    dense_pairs=16, log=lines.append)
    assert lines[0] == f"started from {first}"
    a, b = torch.load(first, weights_only=True), torch.load(second, weights_only=True)
    w = "layer2.0.conv1.weight"
    # one step on from the first teacher: close to it, not equal, and far closer than a fresh start
    fresh = ResNetEncoder("resnet18").state_dict()[w]
    assert not torch.equal(a[w], b[w])
    assert float((a[w].float() - b[w].float()).abs().mean()) < 0.2 * float((a[w].float() - fresh).abs().mean())
    assert "dense_heads" in torch.load(second.with_name(second.name + ".resume"), weights_only=False)
    with pytest.raises(ValueError, match="simclr"):
        pretrain_resnet(second, objective="classify", steps=1, dense=1.0)
