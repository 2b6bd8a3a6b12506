"""The memory bank's coreset (mtfi --normality bank)."""

import pytest
import torch

from mmad_models.methods import CrossModalDistillation, mtfi

TINY = {"kind": "small", "widths": [4, 8, 16], "stem": 4}
SAMPLE, CANDIDATES = mtfi.BANK_SAMPLE, mtfi.BANK_CANDIDATES  # the shipped rule


def _parts(n, spot_part=None, seed=0):
    """[n,1,48,64] ir frames of a plain plate on a flat background with mild noise; part
    ``spot_part`` has a small hot spot: a normal place that only one training part shows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 48, 64), 20000.0)
    x[:, :, 12:36, 8:56] = 30000.0
    x += 50 * torch.randn(x.shape, generator=g)
    if spot_part is not None:
        x[spot_part, :, 20:24, 30:34] = 45000.0
    return x


def _bank(train, size):
    torch.manual_seed(0)
    model = CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", bank_size=size, input_weight=5.0).eval()
    model.teachers["ir"].input.fit(train["ir"])
    model.fit_inputs(train)
    model.fit_normality(train, seed=0)
    return model


@pytest.mark.parametrize("candidates, covered", [(CANDIDATES, True), (SAMPLE, False)])
def test_the_coreset_is_chosen_among_every_training_location(monkeypatch, candidates, covered):
    """A normal place that one training part of 40 shows (a hot spot) is in the bank when the
    coreset is chosen among every training location (the farthest point is taken first), so
    that part scores like the others; chosen among a random sample of them, as before 0.11.0,
    the spot is not among the candidates with this seed and the part scores as an anomaly."""
    monkeypatch.setattr(mtfi, "BANK_CANDIDATES", candidates)
    train = {"ir": _parts(40, spot_part=7)}
    model = _bank(train, size=128)
    locations = 40 * 12 * 16  # the bank's grid: stride 4 at 48x64
    assert SAMPLE * 128 < locations <= CANDIDATES * 128
    with torch.no_grad():
        peaks = model.branch_maps(train)[0].flatten(1).amax(1)
    others = torch.cat([peaks[:7], peaks[8:]])
    if covered:
        assert float(peaks[7]) <= float(others.max())
    else:
        assert float(peaks[7]) > 2 * float(others.max())


def test_held_out_maps_score_each_training_part_by_a_bank_chosen_without_it():
    """The calibration's extra good parts: each training part scored by a bank chosen among
    the other folds' locations. The part with the only hot spot is normal to the model's own
    bank (the spot is in it) and stands out held out; the others score alike both ways; the
    head of synthetic anomalies gives none (its map is not the distance)."""
    train = {"ir": _parts(40, spot_part=7)}
    model = _bank(train, size=128)
    with torch.no_grad():
        seen = model.branch_maps(train)[0].flatten(1).amax(1)
    held = model.held_out_maps(train)
    assert len(held) == 1 and held[0].shape == (40, 1, 48, 64)
    peaks = held[0].flatten(1).amax(1)
    others = torch.cat([peaks[:7], peaks[8:]])
    assert float(seen[7]) <= float(torch.cat([seen[:7], seen[8:]]).max())
    assert float(peaks[7]) > 2 * float(others.max())
    assert float(others.median()) < 1.5 * float(seen.median())
    assert model.held_out_maps(train) is not held and torch.equal(model.held_out_maps(train)[0], held[0])  # seeded
    head = CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", bank_size=64, discriminate=True,
                                  head_steps=2).eval()
    head.teachers["ir"].input.fit(train["ir"])
    head.fit_normality(train)
    assert head.held_out_maps(train) is None


def test_held_out_folds_of_a_bank_are_contiguous_runs_of_the_parts():
    """Parts come in runs that share a look (here 5 runs of 8, each with a hot spot of its own
    level, as a line's parts drift in lighting or lot). A part held out must not be vouched for
    by its run's other parts still in the bank, or the calibration's good parts score lower
    than new ones and the threshold passes too many: the folds are the runs, so every part
    held out stands out, while the model that saw them all finds them normal."""
    train = {"ir": _parts(40)}
    for run in range(5):
        train["ir"][run * 8:(run + 1) * 8, :, 20:24, 30:34] = 36000.0 + 3000.0 * run
    model = _bank(train, size=128)
    with torch.no_grad():
        seen = model.branch_maps(train)[0].flatten(1).amax(1)
    held = model.held_out_maps(train)[0].flatten(1).amax(1)
    assert float(held.min()) > 2 * float(seen.max())

def test_the_distance_to_a_bank_is_taken_in_blocks_with_the_same_minimum(monkeypatch):
    """A bank of more than BANK_CHUNK entries is compared a block at a time, each block's
    minimum kept: every location's distance is the one to its nearest entry over all blocks,
    including an entry in the last, partial block."""
    monkeypatch.setattr(mtfi, "BANK_CHUNK", 64)
    model = CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", bank_size=200, bank_dims=8)
    g = torch.Generator().manual_seed(3)
    bank = torch.randn(200, 8, generator=g)
    e = torch.randn(2, 8, 5, 7, generator=g)
    e[0, :, 1, 2] = bank[197]  # on an entry of the last block: distance 0
    got = model._distance(e, bank)
    want = torch.cdist(e.flatten(2).transpose(1, 2), bank).amin(-1).reshape(2, 1, 5, 7)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert float(got[0, 0, 1, 2]) < 1e-2 < float(got.mean())


def test_an_auto_bank_has_one_entry_per_bank_locations_in_whole_blocks(monkeypatch):
    """--bank-size auto: one entry per BANK_LOCATIONS training locations, in
    whole blocks of BANK_CHUNK, from one block to BANK_MAX; the size chosen goes into the run's
    config, so that the checkpoint rebuilds the same model."""
    assert mtfi.auto_bank_size(1) == mtfi.BANK_CHUNK
    assert mtfi.auto_bank_size(952_560) == 16384  # the real tire's 210 parts at 432x672
    assert mtfi.auto_bank_size(598_980) == 12288  # the real rope's 298 parts at 240x536
    assert mtfi.auto_bank_size(10**9) == mtfi.BANK_MAX
    monkeypatch.setattr(mtfi, "BANK_CHUNK", 16)
    train = {"ir": _parts(40)}  # 7680 locations: 120 entries, 8 blocks of 16
    model = _bank(train, size="auto")
    assert model.bank_ir.shape[0] == 128 and model.fitted_config() == {"bank_size": 128}
    assert len(torch.unique(model.bank_ir, dim=0)) == 128  # a coreset of 128 distinct locations
    again = CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", bank_size=128, input_weight=5.0)
    again.load_state_dict(model.state_dict())
    with pytest.raises(ValueError, match="positive number of entries or 'auto'"):
        CrossModalDistillation(("ir",), (48, 64), TINY, normality="bank", bank_size=0)
