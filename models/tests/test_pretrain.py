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
