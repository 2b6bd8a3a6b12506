import json

import numpy as np
import pytest
import torch

from mmad_models.cli import main
from mmad_models.teachers import fractal_dataset, pretrain_procedural, pretrain_selfsup
from mmad_models.train import RunConfig, load_checkpoint, train_run


def test_train_eval_export_cli(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = RunConfig(dataset=str(tiny_dataset), category="slab", modalities=("rgb", "xyz"), size=(32, 32),
                    teacher="random", widths=(4, 8, 16), epochs=2, batch_size=4, teacher_dir=str(tmp_path / "t"),
                    head_steps=40, bank_size="auto")
    res = train_run(cfg, run, log=lambda *_: None)
    th = res["threshold"]
    # 3 validation parts and the 6 training parts, each scored by a bank chosen without it
    assert th["validationCount"] == 9 and th["heldOutCount"] == 6 and th["falseAlarmRate"] == 0.01
    assert "6 training parts, each scored by a model fitted without it" in th["rule"]
    d = th["distribution"]
    assert d["kind"] == "gumbel"  # fewer than 50 scores: a Gumbel fitted to all of them
    assert th["value"] == pytest.approx(d["location"] - d["scale"] * np.log(-np.log(0.99)))
    m = res["metrics"]
    assert m["testCount"] == 11 and 0 <= m["i_auroc"] <= 1 and 0 <= m["aupro_0_3"] <= 1
    assert 0 <= m["recall"] <= 1 and 0 <= m["falseAlarmRate"] <= 1
    assert set(m["perDefect"]) == {"stain", "hotspot", "dent", "crack"}
    # the scorer standardises each branch by its validation goods' image scores
    model, cfg2, _ = load_checkpoint(run / "model.pt")
    assert cfg2.modalities == ("rgb", "xyz")
    # --bank-size auto: one block for the few locations of 6 parts at 32x32, written as a number
    assert cfg.bank_size == cfg2.bank_size == 4096 and model.bank_rgb.shape[0] == 4096
    with torch.no_grad():
        maps = model.branch_maps({"rgb": torch.zeros(1, 3, 32, 32), "xyz": torch.zeros(1, 3, 32, 32)})
    assert len(maps) == 2 and maps[0].shape == (1, 1, 32, 32)

    assert main(["eval", str(run)]) == 0
    table = capsys.readouterr().out
    assert "mtfi" in table and "rgb+xyz" in table and "I-AUROC" in table

    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out), "--version", "1.2.3"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    e = manifest["models"][0]
    assert e["id"] == "mtfi-rgb-xyz" and e["version"] == "1.2.3" and (out / e["file"]).exists()
    assert e["training"]["bankSize"] == 4096
    assert e["metrics"]["i_auroc"] == m["i_auroc"] and e["threshold"]["value"] == th["value"]
    assert e["threshold"]["falseAlarmRate"] == 0.01 and e["metrics"]["recall"] == m["recall"]
    assert e["metrics"]["peakOnDefect"] == m["peakOnDefect"] and 0 <= m["peakOnDefect"] <= 1
    index = json.loads((out / e["parity"]["index"]).read_text())
    assert [i["name"] for i in index["inputs"]] == ["rgb", "xyz"] and index["inputs"][0]["shape"] == [2, 3, 32, 32]

    # a run calibrated by the older rule (mean + k std) is refused before anything is written
    ck = torch.load(run / "model.pt", weights_only=False)
    ck["result"]["threshold"] = {"value": 1.0, "rule": "mean + 3 * std", "sigmas": 3.0}
    torch.save(ck, tmp_path / "old.pt")
    fresh = tmp_path / "fresh"
    with pytest.raises(SystemExit, match=r"(?s)nothing written.*\(mtfi-rgb-xyz\)\.threshold: 'falseAlarmRate' is a required"):
        main(["export", str(tmp_path / "old.pt"), "--out", str(fresh), "--version", "1.2.4"])
    assert not fresh.exists()


def test_procedural_teacher_learns_fractal_classes():
    x, y = fractal_dataset(4, 6, 32, seed=0)
    assert x.shape == (24, 3, 32, 32) and np.bincount(y).tolist() == [6] * 4
    logs = []
    pretrain_procedural((4, 8, 16), 32, n_classes=4, per_class=6, epochs=8, log=logs.append)
    acc = [float(line.split("acc ")[1]) for line in logs if "acc" in line]
    assert acc[-1] > 0.4  # above the 0.25 of chance on 4 classes


def test_selfsup_teacher_reduces_reconstruction_error():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32).cumsum(-1) * 0.1  # smooth structured inputs
    logs = []
    enc = pretrain_selfsup(x, (4, 8, 16), epochs=8, log=logs.append)
    mse = [float(line.split("mse ")[1]) for line in logs]
    assert mse[-1] < mse[0]
    assert not enc.training


def test_mtfi_train_eval_export_cli(tiny_dataset, tmp_path, capsys):
    """MTFI trained with rgb+xyz, inferred with rgb only (its rgb scored by a discriminator
    head); CRD beside it in one eval table."""
    # no --size: auto, the frames' own 32x32 (never upscaled)
    common = ["--dataset", str(tiny_dataset), "--category", "slab", "--teacher", "random",
              "--epochs", "2", "--batch-size", "4", "--teacher-dir", str(tmp_path / "t"), "--threads", "1",
              "--head-steps", "40"]
    assert main(["train", *common, "--modalities", "rgb", "--train-modalities", "rgb,xyz",
                 "--bank-size", "128", "--discriminator", "--rgb-gamma", "0.5",
                 "--out", str(tmp_path / "mtfi")]) == 0  # mtfi: the default
    assert main(["train", *common, "--method", "crd", "--modalities", "rgb", "--false-alarm-rate", "0.05",
                 "--teacher-widths", "8,16,32", "--out", str(tmp_path / "crd")]) == 0
    _, crd_cfg, crd_res = load_checkpoint(tmp_path / "crd" / "model.pt")
    assert crd_res["threshold"]["falseAlarmRate"] == 0.05 and crd_cfg.widths == (8, 16, 32)
    model, cfg, res = load_checkpoint(tmp_path / "mtfi" / "model.pt")
    assert cfg.method == "mtfi" and cfg.modalities == ("rgb",) and model.missing == ("xyz",) and cfg.size == (32, 32)
    assert cfg.discriminator and list(model.heads) == ["rgb"]  # the distilled xyz keeps its distance map
    assert cfg.rgb_gamma == 0.5 and model.teachers["rgb"].input.gamma == 0.5
    assert res["threshold"]["validationCount"] == 3 and 0 <= res["metrics"]["i_auroc"] <= 1
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "crd"), str(tmp_path / "mtfi"), "--per-defect"]) == 0
    table = capsys.readouterr().out
    rows = [line.split() for line in table.splitlines() if line.startswith(("crd ", "mtfi "))]
    assert [r[:3] for r in rows[:2]] == [["crd", "rgb", "rgb"], ["mtfi", "rgb", "rgb+xyz"]]
    assert "crack" in table
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "mtfi"), "--out", str(out)]) == 0
    e = json.loads((out / "manifest.json").read_text())["models"][0]
    assert e["id"] == "mtfi-rgb" and e["method"] == "mtfi" and e["modalities"] == ["rgb"]
    assert e["training"]["discriminator"] is True
    assert e["inputs"][0]["normalisation"]["gamma"] == 0.5
    assert e["training"]["trainModalities"] == ["rgb", "xyz"] and e["training"]["distilledModalities"] == ["xyz"]
    with pytest.raises(SystemExit):
        main(["train", *common, "--method", "mtfi", "--modalities", "ir", "--train-modalities", "rgb,xyz"])
    for bad in (["--method", "crd"], ["--normality", "rd"]):  # no memory bank for the head to read
        with pytest.raises(SystemExit, match="--discriminator"):
            main(["train", *common, "--modalities", "rgb", "--discriminator", *bad])
    for bad in (["--false-alarm-rate", "1"], ["--false-alarm-rate", "0"], ["--sigmas", "3"],  # --sigmas: the older rule, gone
                ["--teacher-widths", "8,16"], ["--teacher-widths", "8,0,32"],
                ["--rgb-gamma", "0"], ["--rgb-gamma", "1.5"], ["--rgb-gamma", "x"], ["--bank-size", "0"], ["--bank-size", "big"]):
        with pytest.raises(SystemExit):
            main(["train", *common, "--modalities", "rgb", *bad])


def test_aligned_local_normality_train_export_cli(tiny_dataset, tmp_path):
    """--align pose --normality local --xyz-face --local-jitter --local-pool 1 --input-detail rgb --keep-input --map-sigma 0
    through the CLI: the threshold is
    calibrated on the validation parts and the training parts held out in turn (each part once,
    not its jittered copies), and the export (GridSample and the per-cell Gaussians in the
    graph) matches PyTorch."""
    common = ["--dataset", str(tiny_dataset), "--category", "slab", "--teacher", "random",
              "--teacher-dir", str(tmp_path / "t"), "--threads", "1"]
    assert main(["train", *common, "--modalities", "rgb,xyz", "--normality", "local", "--align", "pose",
                 "--local-dims", "12", "--xyz-face", "--bank-size", "64", "--local-jitter", "0.5,0.2",
                 "--local-pool", "1", "--input-detail", "rgb", "--keep-input", "--map-sigma", "0",
                 "--out", str(tmp_path / "local")]) == 0
    model, cfg, res = load_checkpoint(tmp_path / "local" / "model.pt")
    assert cfg.normality == "local" and cfg.align == "pose" and model.pose_modality == "xyz"
    assert model.lprec_rgb.shape[1:] == (12, 12) and float(model.aligner.level) != 0.0
    assert cfg.local_pool == 1 and model.local_pool == 1 and model.input_detail == ("rgb",)
    assert cfg.keep_input and cfg.map_sigma == 0 and model.scorer.sigma == 0
    # 3 validation parts and the 6 training parts, each scored by Gaussians fitted without it
    assert res["threshold"]["validationCount"] == 9 and res["threshold"]["heldOutCount"] == 6
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "local"), "--out", str(out)]) == 0
    e = json.loads((out / "manifest.json").read_text())["models"][0]
    assert e["training"]["normality"] == "local" and e["training"]["align"] == "pose" and e["training"]["localDims"] == 12
    assert e["training"]["localJitter"] == {"pixels": 0.5, "degrees": 0.2, "copies": 2} and e["training"]["localPool"] == 1
    assert e["training"]["inputDetail"] == ["rgb"]
    assert e["training"]["keepInput"] is True and e["training"]["mapSigma"] == 0
    assert e["parity"]["maxAbsErrorVsPytorch"]["score"] < 1e-3
    with pytest.raises(SystemExit, match="--keep-input"):
        main(["train", *common, "--modalities", "rgb", "--keep-input"])
    for sigma in ("-1", "x"):
        with pytest.raises(SystemExit):
            main(["train", *common, "--modalities", "rgb", "--map-sigma", sigma])
    with pytest.raises(SystemExit, match="--discriminator"):
        main(["train", *common, "--modalities", "rgb", "--align", "pose", "--discriminator"])
    with pytest.raises(SystemExit, match="--method mtfi"):
        main(["train", *common, "--method", "crd", "--modalities", "rgb", "--align", "pose"])
    with pytest.raises(SystemExit, match="--align shift or pose"):
        main(["train", *common, "--modalities", "ir", "--normality", "local", "--ir-relative"])
    with pytest.raises(SystemExit, match="--local-jitter perturbs"):
        main(["train", *common, "--modalities", "rgb", "--local-jitter", "0.5,0.2"])
    with pytest.raises(SystemExit, match="--local-pool sets the cells"):
        main(["train", *common, "--modalities", "rgb", "--local-pool", "1"])
    with pytest.raises(SystemExit, match="--local-pool is a positive"):
        main(["train", *common, "--modalities", "rgb", "--normality", "local", "--align", "pose", "--local-pool", "0"])
    with pytest.raises(SystemExit):  # not two numbers
        main(["train", *common, "--modalities", "rgb", "--normality", "local", "--align", "pose", "--local-jitter", "0.5"])
    with pytest.raises(SystemExit, match="--input-detail rgb,ir: only modalities the student reads"):
        main(["train", *common, "--modalities", "rgb", "--input-detail", "rgb,ir"])
    with pytest.raises(SystemExit, match="--input-detail extends the pooled input"):
        main(["train", *common, "--modalities", "rgb", "--normality", "rd", "--input-detail", "rgb"])
    with pytest.raises(SystemExit, match="--method mtfi"):
        main(["train", *common, "--method", "crd", "--modalities", "rgb", "--input-detail", "rgb"])
    with pytest.raises(SystemExit, match="an ir input"):
        main(["train", *common, "--modalities", "rgb", "--normality", "local", "--align", "pose", "--ir-relative"])


def test_the_corpus_teacher_ships_and_trains_a_student_on_standardised_inputs(tiny_dataset, tmp_path):
    """--teacher corpus: the shipped ResNet-18 (teachers/corpus-simclr-r18-s0.pt), rgb normalised with
    its corpus's statistics (as in its pre-training), xyz standardised with the training parts', one
    copy of the weights for all modalities; the export matches PyTorch."""
    from mmad_models.train import CORPUS_RGB_MEAN, CORPUS_TEACHER, SHIPPED_TEACHERS

    assert (SHIPPED_TEACHERS / CORPUS_TEACHER).stat().st_size < 30 * 2**20
    common = ["--dataset", str(tiny_dataset), "--category", "slab", "--teacher", "corpus", "--threads", "1"]
    assert main(["train", *common, "--modalities", "rgb,xyz", "--bank-size", "64", "--out", str(tmp_path / "c")]) == 0
    model, cfg, res = load_checkpoint(tmp_path / "c" / "model.pt")
    assert cfg.teacher == "corpus" and res["specs"]["rgb"]["kind"] == "resnet"
    assert model.teachers["rgb"].encoder is model.teachers["xyz"].encoder
    torch.testing.assert_close(model.teachers["rgb"].input.mean.flatten(), torch.tensor(CORPUS_RGB_MEAN))
    assert float(model.teachers["xyz"].input.std.flatten()[0]) != 1.0  # fitted to the training parts
    out = tmp_path / "exported"
    assert main(["export", str(tmp_path / "c"), "--out", str(out)]) == 0
    e = json.loads((out / "manifest.json").read_text())["models"][0]
    assert e["parity"]["maxAbsErrorVsPytorch"]["score"] < 1e-3
