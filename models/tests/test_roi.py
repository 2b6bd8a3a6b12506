import json

import numpy as np
import pytest
from PIL import Image

from mmad_models.cli import main
from mmad_models.data import load_split, write_ir, write_mask, write_rgb
from mmad_models.data.roi import FULL, box_pixels, check_roi, crop, estimate_roi, parse_roi, training_frames
from mmad_models.train import RunConfig, resolve_size, train_run


def test_box_pixels_is_the_services_formula():
    assert box_pixels(None, 600, 800) == (0, 0, 600, 800)
    assert box_pixels(FULL, 600, 800) == (0, 0, 600, 800)
    # a fraction written from a pixel edge stays on that edge (0.3 * 10 is 3.0000000000000004 in floats)
    assert box_pixels((0.3, 0.7, 0.7, 0.9), 10, 10) == (3, 7, 7, 9)
    # a side between two pixels takes the pixel it touches: the box never shrinks below the fractions
    assert box_pixels((0.141, 0.0839, 0.852, 0.9161), 600, 800) == (84, 67, 512, 733)
    # a box thinner than a pixel keeps one pixel, inside the frame
    assert box_pixels((0.5, 0.5, 0.5000001, 0.5000001), 10, 10) == (5, 5, 6, 6)
    assert box_pixels((0.9999999, 0.0, 1.0, 1.0), 10, 10) == (9, 0, 10, 10)


def test_parse_and_check_say_what_is_wrong():
    assert parse_roi("auto") == "auto" and parse_roi(" None ") == "none"
    assert parse_roi("0,0.25,1,0.75") == (0.0, 0.25, 1.0, 0.75)
    for bad, why in (("0,0.5,1", "LEFT,TOP,RIGHT,BOTTOM"), ("a,b,c,d", "LEFT,TOP,RIGHT,BOTTOM"),
                     ("0,0,1.2,1", "0..1"), ("0.5,0,0.5,1", "left < right"), ("0,0.8,1,0.2", "top < bottom")):
        with pytest.raises(ValueError, match=why):
            parse_roi(bad)
    with pytest.raises(ValueError):
        check_roi((0, 0, 0, 1))


def _band_frames(root, n, rng, y0=30, y1=50, size=(80, 120), split="train", defect="good"):
    """Dark noisy frames with a bright textured band (a rope) between rows y0 and y1, moving a
    little up and down from frame to frame."""
    h, w = size
    for i in range(n):
        a = rng.integers(20, 40, size=(h, w, 3)).astype(np.uint8)
        dy = int(rng.integers(-3, 4))
        a[y0 + dy:y1 + dy] = rng.integers(150, 230, size=(y1 - y0, w, 3))
        write_rgb(root / "band" / split / defect / "rgb" / f"{i:03d}.png", a)


def test_estimate_roi_takes_the_union_of_the_parts_with_a_margin(tmp_path):
    rng = np.random.default_rng(0)
    _band_frames(tmp_path, 12, rng)
    left, top, right, bottom = estimate_roi(training_frames(tmp_path, "band", "rgb"))
    assert left == 0.0 and right == 1.0  # the band crosses the frame
    # rows 27..52 at most hold the band; the box holds them all and is not much larger (a margin of 1/16)
    assert top * 80 <= 27 and bottom * 80 >= 53
    assert top * 80 >= 27 - 6 and bottom * 80 <= 53 + 6
    # a texture that fills the frame has no box: the whole frame
    for i in range(4):
        write_rgb(tmp_path / "tex" / "train" / "good" / "rgb" / f"{i:03d}.png", rng.integers(0, 255, (40, 40, 3)).astype(np.uint8))
    assert estimate_roi(training_frames(tmp_path, "tex", "rgb")) == FULL
    assert estimate_roi([]) == FULL
    # 16-bit ir frames: a warm plate in columns 10..49 and rows 20..39 of 80 x 60
    for i in range(4):
        a = rng.integers(20000, 21000, size=(60, 80)).astype(np.uint16)
        a[20:40, 10:50] = 40000
        write_ir(tmp_path / "plate" / "train" / "good" / "ir" / f"{i:03d}.png", a)
    left, top, right, bottom = estimate_roi(training_frames(tmp_path, "plate", "ir"))
    assert left * 80 <= 10 and right * 80 >= 50 and top * 60 <= 20 and bottom * 60 >= 40
    assert right - left < 0.8 and bottom - top < 0.6


def test_load_split_crops_frames_and_masks_before_resizing(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, size=(40, 60, 3)).astype(np.uint8)
    g = np.zeros((40, 60), np.uint8)
    g[20:24, 30:36] = 255
    write_rgb(tmp_path / "c" / "test" / "cut" / "rgb" / "000.png", a)
    write_mask(tmp_path / "c" / "test" / "cut" / "gt" / "000.png", g)
    roi = (0.25, 0.25, 0.75, 0.75)  # columns 15..44, rows 10..29
    s = load_split(tmp_path, "c", "test", ("rgb",), None, roi=roi)[0]
    assert s.inputs["rgb"].shape == (3, 20, 30)
    np.testing.assert_array_equal(s.inputs["rgb"], crop(a, roi).transpose(2, 0, 1))
    assert s.mask.shape == (1, 20, 30) and s.mask[0, 10:14, 15:21].all() and s.mask.sum() == 24
    resized = load_split(tmp_path, "c", "test", ("rgb",), (10, 15), roi=roi)[0]
    assert resized.inputs["rgb"].shape == (3, 10, 15) and resized.mask.shape == (1, 10, 15)


def test_a_run_estimates_its_roi_sizes_within_it_and_exports_it(tmp_path):
    rng = np.random.default_rng(2)
    _band_frames(tmp_path, 10, rng)
    _band_frames(tmp_path, 4, rng, split="validation")
    _band_frames(tmp_path, 3, rng, split="test")
    _band_frames(tmp_path, 2, rng, split="test", defect="cut")
    for i in range(2):  # a dark cut across the band, and its mask
        path = tmp_path / "band" / "test" / "cut" / "rgb" / f"{i:03d}.png"
        a = np.asarray(Image.open(path)).copy()
        a[36:44, 50:60] = 10
        write_rgb(path, a)
        g = np.zeros((80, 120), np.uint8)
        g[36:44, 50:60] = 255
        write_mask(tmp_path / "band" / "test" / "cut" / "gt" / f"{i:03d}.png", g)
    cfg = RunConfig(dataset=str(tmp_path), category="band", modalities=("rgb",), teacher="random", roi="auto",
                    widths=(4, 8, 16), epochs=1, bank_size=64, teacher_dir=str(tmp_path / "t"))
    resolve_size(cfg, log=lambda *_: None)
    left, top, right, bottom = cfg.roi
    assert (left, right) == (0.0, 1.0) and 0.2 < top < 0.35 and 0.65 < bottom < 0.8
    # auto size: the cropped frames' aspect (120 x ~26 pixels), not the frame's
    h, w = cfg.size
    assert w > 3 * h
    run = tmp_path / "run"
    train_run(cfg, run, log=lambda *_: None)
    saved = json.loads((run / "result.json").read_text())["config"]
    assert saved["roi"] == list(cfg.roi)
    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out), "--version", "1.0.0"]) == 0
    e = json.loads((out / "manifest.json").read_text())["models"][0]
    assert e["inputs"][0]["roi"] == {"left": left, "top": top, "right": right, "bottom": bottom}
    # the default, --roi none: the whole frame, and no roi in the manifest
    run2 = tmp_path / "run2"
    assert main(["train", "--dataset", str(tmp_path), "--category", "band", "--modalities", "rgb",
                 "--teacher", "random", "--teacher-widths", "4,8,16", "--epochs", "1", "--bank-size", "64",
                 "--teacher-dir", str(tmp_path / "t"), "--out", str(run2)]) == 0
    assert json.loads((run2 / "result.json").read_text())["config"]["roi"] is None
    assert main(["export", str(run2), "--out", str(tmp_path / "exported2"), "--version", "1.0.0"]) == 0
    e2 = json.loads((tmp_path / "exported2" / "manifest.json").read_text())["models"][0]
    assert "roi" not in e2["inputs"][0]


def test_a_run_with_ct_judges_the_whole_frame(tmp_path):
    cfg = RunConfig(dataset=str(tmp_path), category="lid", modalities=("ir", "ct"), roi="auto", size=(16, 16),
                    ct_grid=(4, 16, 16))
    resolve_size(cfg, log=lambda *_: None)
    assert cfg.roi is None
    cfg = RunConfig(dataset=str(tmp_path), category="lid", modalities=("rgb", "ct"), roi=(0, 0.2, 1, 0.8), size=(16, 16),
                    ct_grid=(4, 16, 16))
    with pytest.raises(ValueError, match="ct"):
        resolve_size(cfg, log=lambda *_: None)
