import numpy as np
import pytest
import torch
from PIL import Image

from drcnet.data.datasets import (CONTEXT, FixedEvalSet, PairedFolder, SyntheticPairs, find_pairs, list_images, read_photo,
                         split_images)


def save(path, seed=0, size=(40, 48)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_list_and_load_images(tmp_path):
    save(tmp_path / "b.png")
    save(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    image = read_photo(tmp_path / "b.png", max_side=24)
    assert image.dtype == np.float32 and image.shape == (20, 24, 3) and 0 <= image.min() <= image.max() <= 1


def test_split_images_reads_a_data_root(tmp_path):
    save(tmp_path / "train" / "t.png")
    save(tmp_path / "val" / "v.png")
    save(tmp_path / "test" / "x.png")
    assert [p.name for p in split_images("train", root=tmp_path)] == ["t.png"]
    test = split_images("test", root=tmp_path)
    assert list(test) == ["x.png"] and test["x.png"].shape == (40, 48, 3)
    assert list(split_images(str(tmp_path / "val"))) == ["v.png"]


def test_synthetic_pairs_are_deterministic_in_the_index(tmp_path):
    images = [save(tmp_path / f"{i}.png", i, (70, 90)) for i in range(3)]
    ds = SyntheticPairs(images, "denoise", patch=32, length=10, seed=1)
    degraded, clean = ds[4]
    assert degraded.shape == clean.shape == (3, 32, 32) and degraded.dtype == torch.float32
    again = SyntheticPairs(images, "denoise", patch=32, length=10, seed=1)[4]
    assert torch.equal(degraded, again[0]) and torch.equal(clean, again[1])
    assert not torch.equal(degraded, ds[5][0])
    assert not torch.equal(degraded, SyntheticPairs(images, "denoise", patch=32, length=10, seed=2)[4][0])
    with pytest.raises(IndexError):
        ds[10]


def test_synthetic_pairs_pad_small_images_and_accept_arrays():
    """An image smaller than the patch is reflect-padded (bottom and right) up to it: the clean patch is the
    photo itself and its mirror image, for every task (deblur crops a margin more and trims it after blurring)."""
    small = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
    for task in ("denoise", "derain", "deblur"):
        degraded, clean = SyntheticPairs([small], task, patch=48, length=2, augment=False)[0]
        assert degraded.shape == clean.shape == (3, 48, 48)
        m = CONTEXT.get(task, 0)
        side = 48 + 2 * m
        padded = np.pad(small, ((0, side - 20), (0, side - 30), (0, 0)), mode="reflect")[m:m + 48, m:m + 48]
        np.testing.assert_array_equal(clean.numpy().transpose(1, 2, 0), padded, err_msg=task)


def test_generic_and_rain13k_pair_by_name(tmp_path):
    for name in ("1.png", "2.png"):
        save(tmp_path / "input" / name, 1)
        save(tmp_path / "target" / name, 2)
    for layout in ("generic", "rain13k"):
        pairs = find_pairs(tmp_path, layout)
        assert [(a.parent.name, a.name, b.parent.name, b.name) for a, b in pairs] == [
            ("input", "1.png", "target", "1.png"), ("input", "2.png", "target", "2.png")]
    save(tmp_path / "target" / "3.png")
    with pytest.raises(ValueError, match="unpaired"):
        find_pairs(tmp_path, "generic")


def test_gopro_pairs_blur_with_sharp(tmp_path):
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        save(tmp_path / scene / "blur" / "000047.png")
        save(tmp_path / scene / "sharp" / "000047.png")
    pairs = find_pairs(tmp_path, "gopro")
    assert len(pairs) == 2
    assert all(a.parent.name == "blur" and b.parent.name == "sharp" and a.parent.parent == b.parent.parent
               for a, b in pairs)
    save(tmp_path / "GOPR0374_11_00" / "sharp" / "000048.png")
    with pytest.raises(ValueError, match="unpaired"):
        find_pairs(tmp_path, "gopro")


def test_sidd_pairs_noisy_with_gt(tmp_path):
    scene = tmp_path / "Data" / "0001_001_S6_00100_00060_3200_L"
    for n in ("010", "011"):
        save(scene / f"0001_NOISY_SRGB_{n}.PNG")
        save(scene / f"0001_GT_SRGB_{n}.PNG")
    pairs = find_pairs(tmp_path, "sidd")
    assert [(a.name, b.name) for a, b in pairs] == [("0001_NOISY_SRGB_010.PNG", "0001_GT_SRGB_010.PNG"),
                                                    ("0001_NOISY_SRGB_011.PNG", "0001_GT_SRGB_011.PNG")]
    (scene / "0001_GT_SRGB_011.PNG").unlink()
    with pytest.raises(ValueError, match="GT_SRGB"):
        find_pairs(tmp_path, "sidd")


def test_paired_folder_crops_the_same_window(tmp_path):
    pixels = save(tmp_path / "input" / "a.png", 3, (50, 60))
    save(tmp_path / "target" / "a.png", 3, (50, 60))   # identical content: crops must match exactly
    ds = PairedFolder(tmp_path, "generic", patch=24, seed=0, length=4)
    for i in range(4):
        degraded, clean = ds[i]
        assert degraded.shape == (3, 24, 24) and torch.equal(degraded, clean)
    whole = PairedFolder(tmp_path, patch=None, augment=False)[0][0]
    assert whole.shape == (3, 50, 60) and pixels.exists()


def test_fixed_eval_set_is_identical_across_runs():
    images = {f"im{i}": np.random.default_rng(i).random((40, 40, 3), dtype=np.float32) for i in range(2)}
    a = FixedEvalSet(images, "denoise", max_side=32)
    b = FixedEvalSet({"im1": images["im1"]}, "denoise", settings=["sigma25"], max_side=32)
    assert len(a) == 6 and a[0]["degraded"].shape == (32, 32, 3)
    same = next(x for x in a if x["setting"] == "sigma25" and x["image"] == "im1")
    assert np.array_equal(same["degraded"], b[0]["degraded"])
    with pytest.raises(ValueError):
        FixedEvalSet(images, "denoise", settings=["sigma99"])
