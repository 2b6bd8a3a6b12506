import numpy as np
import pytest
import tifffile

from mmad_models.data import (
    fit_plane_lstsq,
    fit_plane_ransac,
    load_split,
    read_ir,
    read_mask,
    read_rgb,
    read_xyz,
    remove_plane,
    resize_organized,
    stack,
    valid_mask,
    write_ir,
    write_mask,
    write_rgb,
    write_xyz,
)
from mmad_models.data.pointcloud import plane_distance, resize_mask
from mmad_models.data.synthetic import write_dataset


def test_io_roundtrip_exact(tmp_path, rng):
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    ir = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    xyz = rng.normal(0, 1, (5, 7, 3)).astype(np.float32)
    xyz[1, 2] = 0
    gt = rng.random((5, 7)) > 0.5
    write_rgb(tmp_path / "a.png", rgb)
    write_ir(tmp_path / "b.png", ir)
    write_xyz(tmp_path / "c.tiff", xyz)
    write_mask(tmp_path / "d.png", gt)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgb)
    np.testing.assert_array_equal(read_ir(tmp_path / "b.png"), ir)
    np.testing.assert_array_equal(read_xyz(tmp_path / "c.tiff"), xyz)
    np.testing.assert_array_equal(read_mask(tmp_path / "d.png"), gt)
    # the xyz file is what MVTec 3D-AD ships: 3 samples float32, uncompressed, little-endian
    with tifffile.TiffFile(tmp_path / "c.tiff") as t:
        p = t.pages[0]
        assert p.dtype == np.float32 and p.samplesperpixel == 3 and p.compression == 1
        assert t.byteorder == "<"


def test_read_ir_scales_8bit(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0, 255]], dtype=np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_ir(tmp_path / "g.png"), [[0, 65535]])


def test_read_xyz_rejects_non_finite(tmp_path):
    a = np.ones((2, 2, 3), dtype=np.float32)
    a[0, 0, 1] = np.nan
    write_xyz(tmp_path / "n.tiff", a)
    b = read_xyz(tmp_path / "n.tiff")
    assert not valid_mask(b)[0, 0] and valid_mask(b).sum() == 3


def _scene(rng, h=60, w=80, outliers=0.0):
    yy, xx = np.mgrid[0:h, 0:w]
    x, y = (xx - w / 2) * 0.001, (yy - h / 2) * 0.001
    z = 0.5 + 0.1 * x - 0.05 * y  # tilted support plane
    part = (np.abs(xx - w / 2) < 15) & (np.abs(yy - h / 2) < 10)
    z = np.where(part, z - 0.01, z)  # a 10 mm high part
    pc = np.stack([x, y, z], -1).astype(np.float32)
    if outliers:
        junk = rng.random((h, w)) < outliers
        pc[junk, 2] -= rng.uniform(0.02, 0.05, junk.sum())
    pc[0, 0] = 0  # a missing point
    return pc, part


def test_plane_fit_lstsq_and_orientation(rng):
    pc, part = _scene(rng)
    pts = pc[~part & valid_mask(pc)].astype(np.float64)
    plane = fit_plane_lstsq(pts)
    assert plane[2] < 0  # towards the camera
    d = plane_distance(pc, plane)
    np.testing.assert_allclose(d[~part & valid_mask(pc)], 0, atol=1e-6)
    # the part is 10 mm above the plane along its normal (cos of the small tilt)
    assert np.median(d[part]) == pytest.approx(0.01 / np.sqrt(1 + 0.1**2 + 0.05**2) * 1.0, rel=0.01)


def test_ransac_ignores_outliers_where_least_squares_fails(rng):
    pc, _ = _scene(rng, outliers=0.25)
    from mmad_models.data import border_points

    pts = border_points(pc, 10)
    truth = np.array([0.1, -0.05, -1.0])
    truth /= np.linalg.norm(truth)
    ransac, inliers = fit_plane_ransac(pts, 0.004, seed=0)
    lsq = fit_plane_lstsq(pts)
    err = lambda p: np.degrees(np.arccos(min(1.0, abs(p[:3] @ truth))))
    assert err(ransac) < 0.1
    assert 0.7 < inliers.mean() < 0.8
    assert err(lsq) > err(ransac)
    assert abs(lsq[3] - ransac[3]) > 1e-3  # outliers pull the least-squares plane off


def test_remove_plane_keeps_the_part_only(rng):
    pc, part = _scene(rng)
    out = remove_plane(pc)
    v = valid_mask(out)
    np.testing.assert_array_equal(v, part)
    np.testing.assert_array_equal(out[v], pc[v])


def test_resize_organized_invents_no_points(rng):
    pc = rng.normal(0, 1, (40, 60, 3)).astype(np.float32)
    pc[rng.random((40, 60)) < 0.5] = 0
    src = {tuple(p) for p in pc[valid_mask(pc)]}
    for shape in [(10, 15), (13, 17), (40, 60), (80, 120), (57, 31)]:
        out = resize_organized(pc, *shape)
        assert out.shape == (*shape, 3)
        for p in out[valid_mask(out)]:
            assert tuple(p) in src
    # a 4x4 footprint with one valid point keeps that point; an empty one stays missing
    pc2 = np.zeros((8, 8, 3), np.float32)
    pc2[0, 3] = [1, 2, 3]
    out = resize_organized(pc2, 2, 2)
    np.testing.assert_array_equal(out[0, 0], [1, 2, 3])
    assert not valid_mask(out)[1].any() and not valid_mask(out)[0, 1]
    # the point nearest the footprint centre wins
    pc3 = np.zeros((4, 4, 3), np.float32)
    pc3[0, 0] = [9, 9, 9]
    pc3[1, 2] = [1, 1, 1]  # centre of the 4x4 footprint is (1.5, 1.5)
    np.testing.assert_array_equal(resize_organized(pc3, 1, 1)[0, 0], [1, 1, 1])


def test_resize_mask_nearest():
    m = np.zeros((4, 4), bool)
    m[:2, :2] = True
    np.testing.assert_array_equal(resize_mask(m, 2, 2), [[True, False], [False, False]])


def test_load_split_layout_and_conventions(tiny_dataset):
    train = load_split(tiny_dataset, "slab", "train")
    assert len(train) == 6 and all(s.label == 0 and s.defect == "good" for s in train)
    test = load_split(tiny_dataset, "slab", "test")
    assert len(test) == 3 + 4 * 2
    assert {s.defect for s in test} == {"good", "stain", "hotspot", "dent", "crack"}
    rgb, ir, xyz, mask = (stack(test, m) for m in ("rgb", "ir", "xyz", "mask"))
    assert rgb.shape == (11, 3, 32, 32) and ir.shape == (11, 1, 32, 32) and xyz.shape == (11, 3, 32, 32)
    assert rgb.max() > 1 and rgb.max() <= 255 and ir.max() > 255 and ir.max() <= 65535
    assert 0.45 < xyz[:, 2][xyz[:, 2] != 0].mean() < 0.55  # metres
    assert mask.shape == (11, 1, 32, 32)
    labels = np.array([s.label for s in test])
    assert (mask.reshape(11, -1).max(1) == labels).all()  # every defect has a region, goods none


def test_load_split_resizes_non_square_and_subsets(tmp_path):
    write_dataset(tmp_path, "wide", size=(30, 40), n_train=2, n_validation=1, n_test_good=1, n_test_per_defect=1,
                  defects=("dent",), modalities=("rgb", "xyz"))
    s = load_split(tmp_path, "wide", "test", modalities=("rgb", "xyz"), size=(15, 20), plane_removal=True)
    assert s[0].inputs["rgb"].shape == (3, 15, 20) and s[0].inputs["xyz"].shape == (3, 15, 20)
    assert s[0].mask.shape == (1, 15, 20)
    # plane removal leaves the part only: most border points are gone
    xyz = s[0].inputs["xyz"]
    border = np.concatenate([xyz[:, 0], xyz[:, -1]], axis=1)
    assert (np.abs(border).sum(0) == 0).mean() > 0.9
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path, "wide", "test", modalities=("rgb", "ir"))


def test_auto_size_keeps_the_aspect_at_the_pixel_budget_in_multiples_of_eight(tmp_path):
    from mmad_models.data import auto_size, source_size, write_rgb
    from mmad_models.data.dataset import AUTO_PIXELS

    assert auto_size(400, 900) == (240, 536)  # the rope's frames
    assert auto_size(800, 600) == (416, 312)  # the tire's
    assert auto_size(64, 64) == (64, 64)  # never upscaled
    assert auto_size(256, 256) == (256, 256)  # within the budget: kept, not resampled
    assert auto_size(272, 272) == (272, 272)
    assert auto_size(300, 300) == (296, 296)  # within the budget, but 300 is no multiple of 8: the one below
    assert auto_size(480, 480) == (360, 360)  # 0.75 of its side: resized to the budget
    assert auto_size(640, 640) == (360, 360)
    h, w = auto_size(3000, 1000)
    assert h % 8 == 0 and w % 8 == 0 and abs(h / w - 3.0) < 0.1 and h * w <= 1.05 * AUTO_PIXELS
    write_rgb(tmp_path / "c" / "train" / "good" / "rgb" / "000.png", np.zeros((40, 90, 3), np.uint8))
    assert source_size(tmp_path, "c", "rgb") == (40, 90)
