import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from drcnet.serve.imageio import ImageError, load_image, save_image, to_output, write_png16


def ramp_rgb(h=24, w=32, top=255, dtype=np.uint8):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * top // (w - 1), yy * top // (h - 1), (xx + yy) * top // (h + w - 2)], 2).astype(dtype)


def test_rgb_png_from_path_bytes_file_and_pil(tmp_path):
    arr = ramp_rgb()
    path = tmp_path / "rgb.png"
    Image.fromarray(arr).save(path)
    for src in (path, str(path), path.read_bytes(), open(path, "rb"), Image.open(path)):
        img = load_image(src)
        assert img.rgb.dtype == np.float32 and img.rgb.shape == (24, 32, 3)
        np.testing.assert_allclose(img.rgb, arr / 255.0, atol=1e-6)
        assert (img.alpha, img.grayscale, img.bit_depth, img.mode) == (None, False, 8, "RGB")
    assert load_image(path).source_name == "rgb.png"


def test_rgb_round_trip_is_lossless(tmp_path):
    arr = ramp_rgb()
    Image.fromarray(arr).save(tmp_path / "in.png")
    img = load_image(tmp_path / "in.png")
    save_image(tmp_path / "out.png", img, img.rgb)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), arr)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_png_level_trades_size_for_speed_and_keeps_every_sample(tmp_path, dtype):
    """The app writes its downloads at zlib level 1 (faster); the samples are the same, the file larger."""
    y, x = np.indices((96, 96))
    arr = np.stack([(x * y) % 251, (x + 3 * y) % 17, (x ^ y) % 64], -1).astype(dtype) * (257 if dtype == np.uint16 else 1)
    (write_png16 if dtype == np.uint16 else lambda p, a: Image.fromarray(a).save(p))(tmp_path / "in.png", arr)
    img = load_image(tmp_path / "in.png")
    fast = save_image(tmp_path / "fast.png", img, img.rgb, png_level=1)
    small = save_image(tmp_path / "small.png", img, img.rgb)
    assert np.array_equal(load_image(fast).rgb, load_image(small).rgb)
    assert np.abs(load_image(fast).rgb - img.rgb).max() < 1e-6
    assert fast.stat().st_size > small.stat().st_size


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[0, 0] = 255                                     # a marked top-left pixel
    exif = Image.Exif()
    exif[0x0112] = 6                                    # "rotate 90 CW to display"
    Image.fromarray(arr).save(tmp_path / "rot.png", exif=exif)
    img = load_image(tmp_path / "rot.png")
    assert img.rgb.shape == (20, 10, 3)
    assert img.rgb[0, -1].min() == 1.0 and img.rgb.sum() == 3.0   # top-left went to top-right


def test_grayscale_8bit(tmp_path):
    grey = ramp_rgb()[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.grayscale and img.bit_depth == 8 and img.mode == "L"
    assert np.array_equal(img.rgb[..., 0], img.rgb[..., 2])
    out = to_output(img, img.rgb)
    assert out.mode == "L" and np.array_equal(np.asarray(out), grey)


def test_grayscale_16bit_keeps_full_precision(tmp_path):
    grey = ramp_rgb(top=65535, dtype=np.uint16)[..., 0]
    grey[0, 0] = 1234                                    # not representable in 8 bits
    Image.frombytes("I;16", (32, 24), grey.astype("<u2").tobytes()).save(tmp_path / "g16.png")
    img = load_image(tmp_path / "g16.png")
    assert img.grayscale and img.bit_depth == 16
    assert img.rgb[0, 0, 0] == pytest.approx(1234 / 65535, abs=1e-7)
    save_image(tmp_path / "out.png", img, img.rgb)
    back = Image.open(tmp_path / "out.png")
    assert back.mode.startswith("I") and np.array_equal(np.asarray(back).astype(np.uint16), grey)
    assert to_output(img, img.rgb).mode == "I;16"


def test_rgb_16bit_png_round_trip_keeps_full_precision(tmp_path):
    arr = ramp_rgb(top=65535, dtype=np.uint16)
    arr[3, 5] = (1, 257, 65534)
    write_png16(tmp_path / "c16.png", arr)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c16.png")), arr >> 8)   # a valid PNG to Pillow
    img = load_image(tmp_path / "c16.png")
    assert not img.grayscale and img.bit_depth == 16
    np.testing.assert_allclose(img.rgb * 65535, arr, atol=1e-2)
    save_image(tmp_path / "out.png", img, img.rgb)
    assert np.array_equal(np.rint(load_image(tmp_path / "out.png").rgb * 65535), arr)


def decode_png16(path) -> np.ndarray:
    """An independent reader for the 16-bit PNGs write_png16 makes (Pillow reads 16-bit colour as 8 bits):
    IHDR, the IDAT stream inflated, rows un-filtered (None or Up), big-endian samples."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, colour = header[:4]
    assert depth == 16
    c = {0: 1, 4: 2, 2: 3, 6: 4}[colour]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c * 2)
    rows = raw[:, 1:].copy()
    for y in range(h):
        assert raw[y, 0] in (0, 2), "filter type"
        if raw[y, 0] == 2 and y:
            rows[y] += rows[y - 1]
    out = rows.view(">u2").reshape(h, w, c).astype(np.uint16)
    return out[..., 0] if c == 1 else out


@pytest.mark.parametrize("channels", [2, 4])
def test_16bit_png_with_alpha_round_trips_every_sample(tmp_path, channels):
    """Grey+alpha and RGBA at 16 bits: load, save the unchanged pixels, and every sample of every channel
    (alpha included) comes back exactly."""
    rgb = ramp_rgb(top=65535, dtype=np.uint16)
    colour = rgb if channels == 4 else rgb[..., :1]
    alpha = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (24, 1))
    alpha[5, 7] = 12345                                   # not a multiple of 257: lost if alpha went via 8 bits
    arr = np.concatenate([colour, alpha[..., None]], 2)
    arr[3, 5, 0] = 1
    write_png16(tmp_path / "in.png", arr)
    assert np.array_equal(decode_png16(tmp_path / "in.png"), arr)
    img = load_image(tmp_path / "in.png")
    assert img.bit_depth == 16 and img.grayscale == (channels == 2)
    assert np.array_equal(np.rint(img.alpha * 65535), alpha)
    save_image(tmp_path / "out.png", img, img.rgb)
    assert np.array_equal(decode_png16(tmp_path / "out.png"), arr)


def test_rgb_16bit_tiff(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    arr = ramp_rgb(top=65535, dtype=np.uint16)
    arr[1, 1] = (3, 300, 60000)
    tifffile.imwrite(tmp_path / "c16.tif", arr)
    img = load_image(tmp_path / "c16.tif")
    assert img.bit_depth == 16
    np.testing.assert_allclose(img.rgb * 65535, arr, atol=1e-2)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_aside_and_reattached(tmp_path, mode):
    rgb = ramp_rgb()
    alpha = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))
    colour = rgb if mode == "RGBA" else rgb[..., :1]
    Image.fromarray(np.concatenate([colour, alpha[..., None]], 2), mode=mode).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.grayscale == (mode == "LA")
    np.testing.assert_allclose(img.alpha, alpha / 255.0, atol=1e-6)
    out = to_output(img, img.rgb)
    assert out.mode == mode and np.array_equal(np.asarray(out)[..., -1], alpha)
    save_image(tmp_path / "out.png", img, img.rgb)                    # the file: colour and alpha, exactly
    back = Image.open(tmp_path / "out.png")
    assert back.mode == mode
    assert np.array_equal(np.asarray(back), np.concatenate([colour, alpha[..., None]], 2))


def test_palette_with_transparency_gets_alpha(tmp_path):
    p = Image.new("P", (8, 6), 0)
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    p.putpixel((2, 3), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    img = load_image(tmp_path / "p.png")
    assert not img.grayscale and img.alpha is not None
    assert img.alpha[3, 2] == 1.0 and img.alpha[0, 0] == 0.0
    assert tuple(img.rgb[3, 2]) == (0.0, 0.0, 1.0)


def test_cmyk_is_converted_to_rgb(tmp_path):
    Image.new("CMYK", (16, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")   # red in CMYK
    img = load_image(tmp_path / "c.jpg")
    assert img.mode == "CMYK" and not img.grayscale and img.rgb.shape == (8, 16, 3)
    assert img.rgb[..., 0].mean() > 0.9 and img.rgb[..., 1:].mean() < 0.1


def test_configurable_pixel_limit_names_count_and_limit(tmp_path):
    Image.fromarray(ramp_rgb()).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"big\.png: 32x24 = 768 pixels is over the limit of 500 pixels"):
        load_image(tmp_path / "big.png", max_pixels=500)


def png_header_only(w, h):
    """A PNG that declares w x h pixels but carries no pixel data: a bomb must be refused before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(ImageError, match=r"10000x9000 = 90,000,000 pixels is over the limit of 40,000,000"):
        load_image(png_header_only(10000, 9000))
    with pytest.raises(ImageError, match="decompression-bomb"):     # beyond Pillow's own hard limit too
        load_image(png_header_only(100000, 100000), max_pixels=10**12)


def test_non_image_truncated_and_missing_files(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageError, match=r"notes\.png: not an image file"):
        load_image(tmp_path / "notes.png")
    Image.fromarray(ramp_rgb(64, 64)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png: the image data is damaged or truncated"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ImageError, match=r"gone\.png: no such file"):
        load_image(tmp_path / "gone.png")
    with pytest.raises(ImageError, match="expected a path"):
        load_image(12345)
    assert issubclass(ImageError, ValueError)


def test_16bit_output_requires_png(tmp_path):
    write_png16(tmp_path / "c16.png", ramp_rgb(top=65535, dtype=np.uint16))
    img = load_image(io.BytesIO((tmp_path / "c16.png").read_bytes()))
    with pytest.raises(ImageError, match=r"\.png"):
        save_image(tmp_path / "out.jpg", img, img.rgb)
