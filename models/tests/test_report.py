import numpy as np
import pytest

from mmad_models import metrics as M
from mmad_models.cli import main
from mmad_models.data.synthetic import DEFECTS, write_dataset
from mmad_models.published import PUBLISHED
from mmad_models.report import RunEval, sections, to_markdown, to_text
from mmad_models.train import RunConfig, _load, load_checkpoint, predict, train_run


@pytest.fixture(scope="module")
def rope_runs(tmp_path_factory):
    """Two tiny runs on a synthetic category named like an MVTec 3D-AD one, so that the
    report finds published figures for it."""
    root = tmp_path_factory.mktemp("rope")
    write_dataset(root, "rope", size=(32, 32), n_train=6, n_validation=3, n_test_good=3, n_test_per_defect=2, seed=3)
    runs = []
    for mods in (("rgb",), ("rgb", "xyz")):
        out = root / ("run-" + "-".join(mods))
        # threshold at the median of the fitted validation scores, so that parts get flagged
        cfg = RunConfig(dataset=str(root), category="rope", modalities=mods, size=(32, 32), teacher="random",
                        widths=(4, 8, 16), epochs=2, batch_size=4, teacher_dir=str(root / "t"), false_alarm_rate=0.5,
                        head_steps=40)
        runs.append((out, train_run(cfg, out, log=lambda *_: None)))
    return runs


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_report_end_to_end(rope_runs, tmp_path, capsys):
    md = tmp_path / "report.md"
    assert main(["report", *[str(out) for out, _ in rope_runs], "--markdown", str(md), "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert "rope — " in text and "11 test parts, 3 good, 4 defect types" in text
    assert "M3DM" in text and "from scratch" in text and "hito2448/TRD MVTec3D.jpg" in text

    rows = [_cells(line) for line in md.read_text().splitlines() if line.startswith(("| ours", "| published"))]
    ours = [r for r in rows if r[0] == "ours"]
    published = {r[1]: r for r in rows if r[0] == "published"}
    # two overall rows, then each defect type with both runs side by side
    assert [(r[2], r[5]) for r in ours[:2]] == [("rgb", "all"), ("rgb+xyz", "all")]
    assert [r[5] for r in ours[2:]] == [d for d in sorted(DEFECTS) for _ in range(2)]
    assert set(published) == {p.method for p in PUBLISHED}
    assert published["M3DM"][7] == "0.972" and published["M3DM"][9] == "0.971"
    assert published["Shape-Guided SDF"][3] == "from scratch" and published["M3DM"][3] == "pretrained"
    assert published["3D-ST"][7] == "-" and all(r[3] == "from scratch" for r in ours)

    flagged_any = False
    for (out, res), overall in zip(rope_runs, ours[:2]):
        m = res["metrics"]  # as train_run evaluated it; the report re-evaluates the checkpoint
        assert overall[7:10] == [f"{m['i_auroc']:.3f}", f"{m['p_auroc']:.3f}", f"{m['aupro_0_3']:.3f}"]
        # the figures at the threshold, recomputed here from the checkpoint's own scores
        model, cfg, stored = load_checkpoint(out / "model.pt")
        x, labels, masks, _ = _load(cfg, "test")
        maps, scores = predict(model, x)
        flagged = scores >= stored["threshold"]["value"]
        assert overall[10] == f"{M.peak_on_defect(maps, masks):.3f}"
        assert overall[11] == f"{flagged[labels == 1].mean():.3f}" and overall[12] == f"{flagged[labels == 0].mean():.3f}"
        assert overall[14] == f"{stored['threshold']['value']:.2f}"
        flagged_any |= bool(flagged.any())
        # the operating points: the run's own rate (*) at its threshold, others from the same fit
        points = [r for r in (_cells(line) for line in md.read_text().splitlines())
                  if len(r) == 9 and r[0] == cfg.method and r[1] == overall[2]]
        rates = [float(r[4].rstrip(" *")) for r in points]
        assert rates == sorted({*M.OPERATING_RATES, 0.5}) and all(r[2:4] == overall[3:5] for r in points)
        own = next(r for r in points if r[4].endswith("*"))
        assert own[4] == "0.5 *" and own[5] == f"{stored['threshold']['value']:.2f}"
        assert own[6] == f"{flagged[labels == 1].mean():.3f}" and own[7] == f"{int(flagged[labels == 0].sum())} of 3"
        for r in points:
            thr = M.distribution_quantile(stored["threshold"]["distribution"], 1 - float(r[4].rstrip(" *")))
            assert r[7] == f"{int((scores[labels == 0] >= thr).sum())} of 3"
            assert float(r[8]) >= float(r[6])  # the best threshold with as many goods over it flags as many at least
    assert flagged_any  # the comparison above is not 0 against 0 only
    assert "operating points:" in text and "Operating points:" in md.read_text()
    crack = [r for r in ours if r[5] == "crack"]
    for (_, res), row in zip(rope_runs, crack):
        d = res["metrics"]["defects"]["crack"]
        assert row[6] == "2" and row[7] == f"{d['i_auroc']:.3f}" and row[11] == f"{d['nok_recall']:.3f}"
        assert row[10] == f"{d['peak_on_defect']:.3f}"
        assert res["metrics"]["perDefect"]["crack"] == d["i_auroc"]


def test_category_without_published_figures():
    cfg = RunConfig(dataset="data/x", category="battery_lid", modalities=("rgb",))
    d = {"count": 2, "i_auroc": 0.5, "p_auroc": 0.6, "aupro_0_3": None, "peak_on_defect": 0.5, "nok_recall": 0.5}
    metrics = {"testCount": 4, "goodCount": 2, "i_auroc": 0.5, "p_auroc": 0.6, "aupro_0_3": 0.4,
               "atThreshold": {"nok_recall": 0.5, "false_alarm_rate": 0.0, "f1": 2 / 3}, "defects": {"dent": d}}
    secs = sections([RunEval("run", cfg, {"threshold": {"value": 3.0}}, metrics)])
    assert [r[5] for r in secs[0].rows] == ["all", "dent"] and secs[0].rows[1][9] == "-"
    assert "no published MVTec 3D-AD figures" in to_text(secs)
    assert "No published MVTec 3D-AD figures" in to_markdown(secs)
    assert secs[0].rows[0][10] == "-"  # a result from before the figure existed
    assert secs[0].rows[1][10] == "0.500"
    assert np.isclose(float(secs[0].rows[0][13]), 2 / 3, atol=1e-3)
