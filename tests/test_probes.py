"""drcnet.model.probes.FeatureProbe on the `device` fixture (tests/conftest.py): the CPU, and CUDA when present."""
import gc
import weakref

import numpy as np
import pytest
import torch

from drcnet import create_model
from drcnet.model.config import MIN_REGION
from drcnet.model.probes import FeatureProbe, Summary


@pytest.fixture(scope="module")
def model(device):
    torch.manual_seed(0)
    return create_model("tiny").eval().to(device)


def hooks_left(model):
    return sum(len(m._forward_hooks) for m in model.modules())


def run(model, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return model(torch.rand(1, 3, size, size, generator=g).to(next(model.parameters()).device))


def test_every_block_is_recorded_with_its_maps(model):
    with FeatureProbe(model, channel=3) as probe:
        run(model, 32)
    assert set(probe.maps) == {(s, l) for s in (1, 2) for l in range(4)}
    m = probe.maps[(1, 0)]
    assert m.response.shape == (32, 32) and 0 <= m.response.min() and m.response.max() <= 1
    assert set(np.unique(m.mask)) <= {0.0, 1.0}
    for summary in (m.spatial, m.energy, m.identity, m.fused):
        assert isinstance(summary, Summary)
        assert summary.mean.shape == (32, 32) and summary.channel.shape == (32, 32)
        assert summary.pca.shape == (32, 32, 3) and summary.pca.min() >= 0 and summary.pca.max() <= 1
    assert (m.height, m.width, m.channels) == (32, 32, 16)
    assert probe.maps[(2, 3)].response.shape == (4, 4) and probe.maps[(2, 3)].channels == 128


def test_chosen_channel_is_that_channel(model):
    with FeatureProbe(model, channel=5, pca=False) as probe:
        run(model, 16)
    fused = probe.maps[(1, 1)].fused
    assert fused.pca is None
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).to(next(model.parameters()).device)
    feats = {}
    handle = model.stage1.encoder[1].dfr.register_forward_hook(lambda m, i, o: feats.setdefault("o", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    np.testing.assert_allclose(fused.channel, feats["o"][0, 5].cpu().numpy(), atol=1e-6)
    np.testing.assert_allclose(fused.mean, feats["o"][0].mean(0).cpu().numpy(), atol=1e-5)


def test_hooks_are_removed_on_exit_and_on_exception(model):
    before = hooks_left(model)
    with FeatureProbe(model) as probe:
        assert hooks_left(model) > before
        run(model, 16)
    assert hooks_left(model) == before == 0
    with pytest.raises(RuntimeError, match="boom"):
        with FeatureProbe(model):
            raise RuntimeError("boom")
    assert hooks_left(model) == 0
    assert probe.maps          # maps survive the exit


def test_mask_is_the_thresholded_response_and_coverage_follows_t(model):
    coverages = []
    try:
        for t in (0.3, 0.5, 0.7):
            model.set_threshold(t)
            with FeatureProbe(model) as probe:
                run(model, 32)
            m = probe.maps[(1, 0)]
            expected = (m.response >= t).astype(np.float32)
            if expected.size - expected.sum() < MIN_REGION:
                expected[:] = 1                          # a region of a few pixels joins the rest (dfr.py)
            if expected.sum() < MIN_REGION:
                expected[:] = 0
            assert np.array_equal(m.mask, expected)
            assert m.coverage == pytest.approx(float(m.mask.mean()))
            coverages.append(m.coverage)
    finally:
        model.set_threshold(0.75)
    assert coverages[0] >= coverages[1] >= coverages[2] and coverages[0] > coverages[2]


def test_ablation_variant_skips_missing_branches(device):
    torch.manual_seed(0)
    model = create_model("tiny", variant="base+SF", sf_levels=(0,)).eval().to(device)
    with FeatureProbe(model) as probe:
        run(model, 16)
    assert probe.maps[(1, 0)].energy is None and probe.maps[(1, 0)].identity is None
    assert probe.maps[(1, 0)].mask is not None
    assert probe.maps[(1, 1)].response is None and probe.maps[(1, 1)].coverage is None
    assert isinstance(probe.maps[(1, 1)].fused, Summary)


def test_last_forward_wins_and_clear(model):
    with FeatureProbe(model) as probe:
        run(model, 32, seed=1)
        run(model, 16, seed=2)
        assert probe.maps[(1, 0)].response.shape == (16, 16)
        probe.clear()
        assert probe.maps == {}


def map_bytes(maps):
    arrays = []
    for m in maps.values():
        for v in vars(m).values():
            arrays += [a for a in (vars(v).values() if hasattr(v, "pca") else [v]) if isinstance(a, np.ndarray)]
    return sum(a.nbytes for a in arrays)


def records(maps) -> list:
    """Every object a capture made: the per-block records and their summaries."""
    return [obj for m in maps.values() for obj in (m, *(v for v in vars(m).values() if hasattr(v, "pca")))]


def test_repeated_captures_do_not_keep_old_maps(model):
    """20 captures in one probe: each replaces the last. Every object of the first capture is freed, the maps
    stay one capture's size, and no Python objects pile up (a probe keeping every capture would leave 20 times
    its records alive). Counted, not measured: RSS would ride on the allocator's noise."""
    with FeatureProbe(model) as probe:
        run(model, 16, seed=0)
        one_capture = map_bytes(probe.maps)
        first = [weakref.ref(obj) for obj in records(probe.maps)]
        per_capture = len(first)
        run(model, 16, seed=1)
        gc.collect()
        before = len(gc.get_objects())
        for i in range(20):
            run(model, 16, seed=i)
        gc.collect()
        grown = len(gc.get_objects()) - before
    assert per_capture >= 16 and one_capture > 50_000
    assert all(ref() is None for ref in first)              # the old records were freed, not kept
    assert map_bytes(probe.maps) == one_capture
    assert grown < per_capture, (grown, per_capture)


# ---------------------------------------------------------------- maps stitched from the tiles of a pass

def tiled_restorer(model):
    from drcnet.model.inference import InferenceSpec
    from drcnet.serve.engine import Restorer

    return Restorer(model, device=next(model.parameters()).device, precision="fp32",
                    spec=InferenceSpec("matched", 64, 16, batch=2))


def test_stitched_maps_come_from_the_tiles_that_made_the_output(model):
    """One pass: the probed restore gives the same image as the plain one, runs one forward per batch of tiles,
    and where a single tile covers the image every map is that tile's own (a plain forward of the tile)."""
    r = tiled_restorer(model)
    image = np.random.default_rng(1).random((64, 150, 3)).astype(np.float32)     # 3 tiles across: 0, 48, 86
    plain = r.restore(image)
    forwards = []
    handle = model.register_forward_pre_hook(lambda m, x: forwards.append(x[0].shape[0]))
    try:
        with FeatureProbe(model, pca=False) as probe:
            probed = r.restore(image, probe=probe)
    finally:
        handle.remove()
    np.testing.assert_array_equal(probed, plain)
    assert forwards == [2, 1]                            # 3 tiles in batches of 2: two forwards, no extra pass
    stitched = probe.maps[(1, 1)]
    assert stitched.response.shape == stitched.mask.shape == stitched.fused.mean.shape == (64, 150)
    with FeatureProbe(model, pca=False) as alone, torch.no_grad():
        model(torch.from_numpy(image[:, :64]).permute(2, 0, 1)[None].to(next(model.parameters()).device))
    own = alone.maps[(1, 1)]                             # level 1: half the tile's resolution
    up = np.repeat(np.repeat(own.response, 2, axis=0), 2, axis=1)
    np.testing.assert_allclose(stitched.response[:, :40], up[:, :40], atol=1e-5)   # only tile 0 covers 0..47
    np.testing.assert_allclose(stitched.fused.mean[:, :40],
                               np.repeat(np.repeat(own.fused.mean, 2, axis=0), 2, axis=1)[:, :40], atol=1e-5)
    assert stitched.coverage == pytest.approx(float(stitched.mask.mean()))
    assert 0 <= stitched.mask.min() and stitched.mask.max() <= 1


def test_stitched_maps_are_built_once_when_read_not_after_every_batch(model, monkeypatch):
    """A large photo is many batches of tiles: the image-size maps are built when probe.maps is read, once per
    block, whatever the number of batches; the same maps are returned until the next pass."""
    from drcnet.model import probes

    built = []
    original = probes.Stitch.block_maps
    monkeypatch.setattr(probes.Stitch, "block_maps", lambda self, key, c: built.append(key) or original(self, key, c))
    image = np.random.default_rng(3).random((64, 250, 3)).astype(np.float32)     # 5 tiles: 3 batches of 2
    with FeatureProbe(model, pca=False) as probe:
        tiled_restorer(model).restore(image, probe=probe)
        assert built == []
        first = probe.maps
        blocks = len(list(model.dfr_blocks()))
        assert sorted(built) == sorted(first) and len(built) == blocks
        assert probe.maps is first and len(built) == blocks          # read again: nothing rebuilt
        assert first[(1, 1)].response.shape == (64, 250)


@pytest.mark.parametrize("tiled", [False, True])
def test_blocks_outside_full_blocks_keep_only_their_response_and_mask(model, tiled):
    """The inspector shows one block in full and an overview of M_sr and the mask of all: the other blocks'
    feature maps are neither hooked nor stitched, and what is kept equals a full probe's."""
    image = np.random.default_rng(2).random((64, 150, 3)).astype(np.float32)

    def probed(**kw):
        with FeatureProbe(model, pca=False, **kw) as probe:
            if tiled:
                tiled_restorer(model).restore(image, probe=probe)
            else:
                run(model, 32)
            hooked = hooks_left(model)
        return probe.maps, hooked

    full, all_hooks = probed()
    some, fewer_hooks = probed(full_blocks={(1, 1)})
    assert fewer_hooks < all_hooks and set(some) == set(full)
    for key, m in some.items():
        np.testing.assert_array_equal(m.response, full[key].response)
        np.testing.assert_array_equal(m.mask, full[key].mask)
        assert m.coverage == full[key].coverage
        kept = [m.spatial, m.energy, m.identity, m.fused]
        assert all(s is not None for s in kept) if key == (1, 1) else all(s is None for s in kept)
    np.testing.assert_array_equal(some[(1, 1)].fused.mean, full[(1, 1)].fused.mean)
