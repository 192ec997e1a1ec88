"""adasr.imageio: every bad input gives one clear ImageError; gray, alpha, palette, CMYK, 16-bit and EXIF-rotated
images are read and written back correctly; writes are atomic and destinations are checked up front."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from adasr import imageio
from adasr.data import upscale_bicubic
from adasr.imageio import ImageError, read_image, write_image

RNG = np.random.default_rng(0)


def load(path: Path, **kw) -> imageio.LoadedImage:
    """read_image without the memory check (which the memory tests below cover on their own)."""
    return read_image(path, check_memory=False, **kw)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def rgb8(h: int = 12, w: int = 16) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------- an independent 16-bit PNG encoder (all filters, Adam7)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _filter_rows(rows: list[bytes], bpp: int, filters: list[int]) -> bytes:
    out, prev = bytearray(), bytes(len(rows[0]))
    for y, row in enumerate(rows):
        ft = filters[y % len(filters)]
        f = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            f.append((x - pred) & 0xFF)
        out += bytes([ft]) + f
        prev = row
    return bytes(out)


def png16(arr: np.ndarray, *, filters=(0, 1, 2, 3, 4), interlace: bool = False, trns: tuple | None = None,
          exif: bytes | None = None) -> bytes:
    """uint16 (H, W, C) with C in 2, 3, 4 → PNG bytes (cycling row filters; Adam7 when ``interlace``)."""
    h, w, c = arr.shape
    color = {2: 4, 3: 2, 4: 6}[c]
    bpp = 2 * c
    be = arr.astype(">u2")
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = be[y0::dy, x0::dx]
            if sub.size:
                raw += _filter_rows([r.tobytes() for r in sub], bpp, list(filters))
    else:
        raw = _filter_rows([r.tobytes() for r in be], bpp, list(filters))
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, int(interlace)))]
    if trns is not None:
        parts.append(_chunk(b"tRNS", struct.pack(">HHH", *trns)))
    if exif is not None:
        parts.append(_chunk(b"eXIf", exif))
    parts += [_chunk(b"IDAT", zlib.compress(raw)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def exif_orientation(value: int) -> Image.Exif:
    ex = Image.Exif()
    ex[0x0112] = value
    return ex


# ------------------------------------------------------------------------------------------------------ bad inputs
def test_missing_file(tmp_path):
    with pytest.raises(ImageError) as e:
        load(tmp_path / "nope.png")
    assert one_line(e).startswith(f"input file not found: {tmp_path / 'nope.png'}")


def test_directory(tmp_path):
    with pytest.raises(ImageError) as e:
        load(tmp_path)
    assert "is a folder, not an image file" in one_line(e)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files whatever their permissions")
def test_unreadable_file(tmp_path):
    p = tmp_path / "secret.png"
    Image.fromarray(rgb8()).save(p)
    p.chmod(0)
    try:
        with pytest.raises(ImageError) as e:
            load(p)
        assert "permission denied" in one_line(e)
    finally:
        p.chmod(0o644)


def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is not a picture\n")
    with pytest.raises(ImageError) as e:
        load(p)
    assert one_line(e) == (f"{p} is not an image file Pillow can read (is it really a .png file?); "
                           "convert it to PNG or JPEG first")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageError) as e:
        load(p)
    assert "is empty (0 bytes)" in one_line(e)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image(tmp_path, fmt):
    p = tmp_path / f"cut.{fmt.lower()}"
    buf = io.BytesIO()
    Image.fromarray(rgb8(64, 64)).save(buf, format=fmt)
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError) as e:
        load(p)
    msg = one_line(e)
    assert msg.startswith(f"{p} is truncated or corrupt (") and msg.endswith("re-export or re-download it")


def test_truncated_16bit_colour_png(tmp_path):
    p = tmp_path / "cut16.png"
    data = png16(RNG.integers(0, 65536, (32, 32, 3)).astype(np.uint16))
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load(p)


@pytest.mark.parametrize("damage", ["idat_crc", "no_iend"])
def test_damage_pillow_misses_in_16bit_colour_png(tmp_path, damage):
    """Pillow skips the IDAT checksum and a missing IEND; pypng (which decodes 16-bit colour PNGs) refuses both,
    and its ChunkError becomes the usual one-line ImageError."""
    data = png16(RNG.integers(0, 65536, (16, 16, 3)).astype(np.uint16))
    iend = data.index(b"IEND") - 4  # start of the IEND chunk; the IDAT checksum is the 4 bytes before it
    data = data[: iend - 1] + bytes([data[iend - 1] ^ 1]) + data[iend:] if damage == "idat_crc" else data[:iend]
    p = tmp_path / f"{damage}.png"
    p.write_bytes(data)
    with pytest.raises(ImageError) as e:
        load(p)
    msg = one_line(e)
    assert msg.startswith(f"{p} is truncated or corrupt (ChunkError: ") and msg.endswith("re-export or re-download it")


def test_16bit_image_data_cut_short(tmp_path):
    """A compressed stream that stops at a row boundary (pypng then just yields fewer rows) is refused."""
    a = RNG.integers(0, 65536, (16, 16, 3)).astype(np.uint16)
    rows = b"".join(b"\x00" + r.tobytes() for r in a.astype(">u2"))
    z = zlib.compressobj()
    idat = z.compress(rows[: len(rows) // 2]) + z.flush(zlib.Z_SYNC_FLUSH)  # 8 whole rows, no end of stream
    p = tmp_path / "short.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 16, 2, 0, 0, 0))
                  + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    with pytest.raises(ImageError) as e:
        imageio._read_png16_colour(p)  # Pillow already refuses this file in read_image; this is the second guard
    assert one_line(e) == f"{p} is truncated or corrupt (image data is cut short); re-export or re-download it"


@pytest.mark.parametrize("size", [(1, 1), (7, 7), (100, 4)])
def test_too_small(tmp_path, size):
    w, h = size
    p = tmp_path / "tiny.png"
    Image.fromarray(rgb8(h, w)).save(p)
    with pytest.raises(ImageError) as e:
        load(p)
    assert one_line(e) == (f"{p} is only {w}×{h} pixels; the minimum is 8×8 (smaller images have too little "
                           "detail to upscale; use bicubic resizing instead)")


def test_minimum_size_is_accepted(tmp_path):
    p = tmp_path / "eight.png"
    Image.fromarray(rgb8(8, 8)).save(p)
    assert load(p).rgb.shape == (1, 3, 8, 8)


def test_too_large_for_memory(tmp_path, monkeypatch):
    """Simulated: the estimate says 1 MiB per 1000 pixels and only 64 MiB are available."""
    monkeypatch.setattr(imageio, "estimate_upscale_bytes", lambda h, w, tile=64, overlap=16: h * w * 2**20 // 1000)
    monkeypatch.setattr(imageio, "available_memory_bytes", lambda: 64 * 2**20)
    p = tmp_path / "big.png"
    Image.fromarray(rgb8(300, 400)).save(p)
    with pytest.raises(ImageError) as e:
        read_image(p)
    assert one_line(e) == (f"{p} is 400×300 pixels: upscaling it needs about 120 MiB of memory but only 64 MiB is "
                           "available; crop it into pieces of at most about 252×252 pixels or downscale it first")
    # the same image with enough memory is fine
    monkeypatch.setattr(imageio, "available_memory_bytes", lambda: 2**30)
    assert read_image(p).rgb.shape == (1, 3, 300, 400)


def test_too_large_is_refused_before_decoding(tmp_path, monkeypatch):
    """The size check runs on the header: a huge image is refused without decoding its pixels."""
    monkeypatch.setattr(imageio, "estimate_upscale_bytes", lambda h, w, tile=64, overlap=16: h * w)
    monkeypatch.setattr(imageio, "available_memory_bytes", lambda: 10)
    p = tmp_path / "big.png"
    Image.fromarray(rgb8(16, 16)).save(p)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a too-large image"))
    with pytest.raises(ImageError, match="free some memory"):
        read_image(p)


def test_available_memory_is_positive():
    assert imageio.available_memory_bytes() > 2**20


def test_decompression_bomb(tmp_path):
    """A 30000×30000 header (900 Mpx) is refused by Pillow's safety limit with the same kind of advice."""
    p = tmp_path / "bomb.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
                  + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b""))
    with pytest.raises(ImageError) as e:
        load(p)
    assert one_line(e) == (f"{p} is too large to open safely (900 Mpx, over Pillow's safety limit of 179 Mpx); "
                           "crop it into pieces (tile it) or downscale it first")


def test_float_image_refused(tmp_path):
    p = tmp_path / "float.tif"
    Image.fromarray(RNG.random((16, 16)).astype(np.float32), mode="F").save(p)
    with pytest.raises(ImageError, match=r"32-bit floating-point pixels \(mode F\)"):
        load(p)


# ------------------------------------------------------------------- the real memory estimate (adasr.upscaling)
def test_memory_check_with_the_upscalers_estimate(tmp_path, monkeypatch):
    p = tmp_path / "small.png"
    Image.fromarray(rgb8(16, 16)).save(p)
    assert read_image(p).rgb.shape == (1, 3, 16, 16)  # default: checked against the real available memory
    need = imageio.estimate_upscale_bytes(16, 16)
    assert need > 0
    monkeypatch.setattr(imageio, "available_memory_bytes", lambda: need - 1)
    with pytest.raises(ImageError, match="upscaling it needs about .* but only .* is available"):
        read_image(p)


# --------------------------------------------------------------------------------------------------- good inputs
def test_rgb_roundtrip(tmp_path):
    a = rgb8()
    p = tmp_path / "rgb.png"
    Image.fromarray(a).save(p)
    im = load(p)
    assert (im.mode, im.bit_depth, im.grayscale, im.alpha, im.output_mode) == ("RGB", 8, False, None, "RGB")
    assert im.rgb.dtype == torch.float32 and im.rgb.shape == (1, 3, 12, 16)
    assert float(im.rgb.min()) >= -1 and float(im.rgb.max()) <= 1
    assert np.array_equal(im.to_array(im.rgb), a)


def test_grayscale_is_replicated_and_written_gray(tmp_path):
    g = RNG.integers(0, 256, (10, 12), dtype=np.uint8)
    p = tmp_path / "gray.png"
    Image.fromarray(g).save(p)
    im = load(p)
    assert im.grayscale and im.mode == "L" and im.bit_depth == 8 and im.output_mode == "L"
    assert im.rgb.shape == (1, 3, 10, 12)
    assert torch.equal(im.rgb[:, 0], im.rgb[:, 1]) and torch.equal(im.rgb[:, 0], im.rgb[:, 2])
    assert np.array_equal(im.to_array(im.rgb), g)
    out = write_image(tmp_path / "gray_x4.png", im.to_array(upscale_bicubic(im.rgb)))
    back = Image.open(out.path)
    assert (back.mode, back.size, out.mode) == ("L", (48, 40), "L")


def test_bilevel_becomes_gray(tmp_path):
    p = tmp_path / "bw.png"
    Image.fromarray(RNG.integers(0, 2, (9, 9), dtype=np.uint8) * 255).convert("1").save(p)
    im = load(p)
    assert im.grayscale and im.output_mode == "L"
    assert set(np.unique(im.to_array(im.rgb))) <= {0, 255}


def test_16bit_gray_keeps_full_precision(tmp_path):
    g = (RNG.integers(0, 65536, (10, 12))).astype(np.uint16)
    g[0, :2] = (1000, 1001)  # differ only below 8-bit precision
    p = tmp_path / "gray16.png"
    Image.fromarray(g).save(p)
    assert Image.open(p).mode == "I;16"
    im = load(p)
    assert im.grayscale and im.bit_depth == 16 and im.output_mode == "I;16"
    assert float(im.rgb[0, 0, 0, 1] - im.rgb[0, 0, 0, 0]) == pytest.approx(2 / 65535, rel=1e-3)
    assert np.array_equal(im.to_array(im.rgb), g)
    out = write_image(tmp_path / "gray16_x4.png", im.to_array(upscale_bicubic(im.rgb)))
    back = Image.open(out.path)
    assert (back.mode, back.size, out.bit_depth) == ("I;16", (48, 40), 16)
    same = write_image(tmp_path / "gray16_same.png", im.to_array(im.rgb))
    assert np.array_equal(np.asarray(Image.open(same.path)), g)


@pytest.mark.parametrize("channels,mode", [(3, "RGB;16"), (4, "RGBA;16"), (2, "LA;16")])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_colour_png_exact(tmp_path, channels, mode, interlace):
    """16-bit colour PNGs (which Pillow reduces to 8 bits) are decoded exactly: all five filters, Adam7."""
    a = RNG.integers(0, 65536, (13, 11, channels)).astype(np.uint16)
    p = tmp_path / "c16.png"
    p.write_bytes(png16(a, interlace=interlace))
    high = np.asarray(Image.open(p))  # Pillow's own 8-bit decoding is an independent check of the file
    if channels == 2:  # Pillow opens 16-bit gray+alpha as 8-bit RGBA
        high = high[:, :, [0, 3]]
    assert np.array_equal(high.reshape(a.shape), (a >> 8).astype(np.uint8))
    im = load(p)
    assert (im.mode, im.bit_depth, im.grayscale) == (mode, 16, channels == 2)
    assert (im.alpha is not None) == (channels != 3)
    arr = im.to_array(im.rgb, im.alpha)
    assert np.array_equal(arr.reshape(a.shape), a)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_png_write_roundtrip(tmp_path, channels):
    shape = (9, 14) if channels == 1 else (9, 14, channels)
    a = RNG.integers(0, 65536, shape).astype(np.uint16)
    out = write_image(tmp_path / "w16.png", a)
    assert out.bit_depth == 16 and (out.width, out.height) == (14, 9)
    im = load(out.path)
    assert im.bit_depth == 16
    arr = im.to_array(im.rgb, im.alpha)
    assert np.array_equal(arr, a)


def test_16bit_rgb_upscale_writes_16bit_png(tmp_path):
    a = RNG.integers(0, 65536, (10, 12, 4)).astype(np.uint16)
    p = tmp_path / "rgba16.png"
    p.write_bytes(png16(a))
    im = load(p)
    out = write_image(tmp_path / "rgba16_x4.png", im.to_array(upscale_bicubic(im.rgb), im.upscaled_alpha()))
    assert (out.mode, out.bit_depth, out.width, out.height) == ("RGBA;16", 16, 48, 40)
    back = load(out.path)
    assert back.mode == "RGBA;16" and back.alpha.shape == (1, 1, 40, 48)


def test_16bit_rgb_colour_key_becomes_alpha(tmp_path):
    a = RNG.integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    a[2, 3] = (1, 2, 3)
    p = tmp_path / "key16.png"
    p.write_bytes(png16(a, trns=(1, 2, 3)))
    im = load(p)
    assert im.alpha is not None and float(im.alpha[0, 0, 2, 3]) == 0.0 and float(im.alpha.sum()) == 8 * 9 - 1


def test_16bit_colour_png_with_sbit_stays_exact(tmp_path):
    """An sBIT chunk (significant bits) does not reduce the samples (pypng's asDirect would shift them down)."""
    a = RNG.integers(0, 65536, (8, 9, 3)).astype(np.uint16)
    data = png16(a)
    p = tmp_path / "sbit16.png"
    p.write_bytes(data[:33] + _chunk(b"sBIT", bytes([12, 12, 12])) + data[33:])  # right after the IHDR chunk
    im = load(p)
    assert im.bit_depth == 16 and np.array_equal(im.to_array(im.rgb), a)


def test_rgba_alpha_preserved(tmp_path):
    a = np.concatenate([rgb8(16, 16), np.full((16, 16, 1), 255, np.uint8)], axis=2)
    a[:8, :, 3] = 0  # top half fully transparent
    a[8:, :4, 3] = 128
    p = tmp_path / "rgba.png"
    Image.fromarray(a).save(p)
    im = load(p)
    assert im.mode == "RGBA" and im.alpha.shape == (1, 1, 16, 16) and im.output_mode == "RGBA"
    assert np.array_equal(im.to_array(im.rgb, im.alpha), a)
    up = im.upscaled_alpha()
    assert up.shape == (1, 1, 64, 64) and float(up.min()) >= 0 and float(up.max()) <= 1
    out = write_image(tmp_path / "rgba_x4.png", im.to_array(upscale_bicubic(im.rgb), up))
    back = np.asarray(Image.open(out.path))
    assert Image.open(out.path).mode == "RGBA" and back.shape == (64, 64, 4)
    assert (back[:28, :, 3] == 0).all() and (back[36:, 20:, 3] == 255).all()  # away from the edge at row 32


def test_gray_alpha(tmp_path):
    la = np.stack([RNG.integers(0, 256, (10, 10), dtype=np.uint8), np.full((10, 10), 77, np.uint8)], axis=2)
    p = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(p)
    im = load(p)
    assert im.grayscale and im.output_mode == "LA"
    assert np.array_equal(im.to_array(im.rgb, im.alpha), la)
    out = write_image(tmp_path / "la_x4.png", im.to_array(upscale_bicubic(im.rgb), im.upscaled_alpha()))
    assert Image.open(out.path).mode == "LA" and Image.open(out.path).size == (40, 40)


def test_palette_without_transparency_becomes_rgb(tmp_path):
    src = Image.fromarray(rgb8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p = tmp_path / "pal.png"
    src.save(p)
    im = load(p)
    assert im.mode == "P" and im.alpha is None and not im.grayscale and im.output_mode == "RGB"
    assert np.array_equal(im.to_array(im.rgb), np.asarray(src.convert("RGB")))


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_palette_with_transparency_becomes_rgba(tmp_path, fmt):
    idx = RNG.integers(0, 4, (12, 12), dtype=np.uint8)
    src = Image.fromarray(idx, mode="P")
    src.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    p = tmp_path / f"palt.{fmt}"
    src.save(p, transparency=3)
    im = load(p)
    assert im.output_mode == "RGBA"
    alpha = im.to_array(im.rgb, im.alpha)[:, :, 3]
    assert np.array_equal(alpha == 0, idx == 3)


def test_rgb_colour_key_becomes_alpha(tmp_path):
    a = rgb8()
    a[0, 0] = (1, 2, 3)
    p = tmp_path / "key.png"
    Image.fromarray(a).save(p, transparency=(1, 2, 3))
    im = load(p)
    assert im.output_mode == "RGBA" and float(im.alpha[0, 0, 0, 0]) == 0.0


def test_cmyk_becomes_rgb(tmp_path):
    src = Image.fromarray(rgb8()).convert("CMYK")
    p = tmp_path / "cmyk.jpg"
    src.save(p, quality=100)
    im = load(p)
    assert im.mode == "CMYK" and im.output_mode == "RGB" and im.icc_profile is None
    ref = np.asarray(Image.open(p).convert("RGB")).astype(int)
    assert np.abs(im.to_array(im.rgb).astype(int) - ref).max() <= 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    a = rgb8(10, 16)
    p = tmp_path / "rot.png"
    Image.fromarray(a).save(p, exif=exif_orientation(orientation))
    im = load(p)
    ref = np.asarray(ImageOps.exif_transpose(Image.open(p)))
    assert im.rgb.shape[-2:] == ref.shape[:2]
    assert np.array_equal(im.to_array(im.rgb), ref)
    if orientation >= 5:
        assert (im.height, im.width) == (16, 10)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_array_matches_pillow(orientation):
    a = rgb8(5, 7)
    ref = np.asarray(ImageOps.exif_transpose(_with_orientation(a, orientation)))
    assert np.array_equal(imageio._orient_array(a, orientation), ref)


def _with_orientation(a: np.ndarray, orientation: int) -> Image.Image:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", exif=exif_orientation(orientation))
    im = Image.open(io.BytesIO(buf.getvalue()))
    im.load()
    return im


def test_exif_orientation_on_16bit_colour_png(tmp_path):
    a = RNG.integers(0, 65536, (8, 12, 3)).astype(np.uint16)
    p = tmp_path / "rot16.png"
    p.write_bytes(png16(a, exif=exif_orientation(6).tobytes()))
    im = load(p)
    assert np.array_equal(im.to_array(im.rgb), np.rot90(a, -1))


def test_to_array_checks_alpha(tmp_path):
    p = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([rgb8(8, 8), np.full((8, 8), 255, np.uint8)])).save(p)
    im = load(p)
    with pytest.raises(ValueError, match="alpha must be given"):
        im.to_array(im.rgb)
    assert im.to_pil(upscale_bicubic(im.rgb), im.upscaled_alpha()).mode == "RGBA"


# -------------------------------------------------------------------------------------------------- destinations
def test_output_folder_missing(tmp_path):
    target = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(ImageError) as e:
        imageio.check_output(target)
    assert one_line(e) == (f"output folder {target.parent} does not exist; create it first "
                           f"(mkdir -p {target.parent}) or choose another path")
    with pytest.raises(ImageError, match="does not exist"):
        write_image(target, rgb8())
    assert not target.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_output_folder_read_only(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(ImageError) as e:
            imageio.check_output(ro / "out.png")
        assert one_line(e) == f"output folder {ro} is not writable; choose another path or fix its permissions"
    finally:
        ro.chmod(0o755)


def test_output_is_a_folder(tmp_path):
    with pytest.raises(ImageError, match="is a folder; give a file name inside it"):
        imageio.check_output(tmp_path)


@pytest.mark.parametrize("name,message", [
    ("out.xyz", "unknown image extension '.xyz'"),
    ("out", "has no file extension"),
    ("out.psd", "Pillow can read .psd files but cannot write them"),
])
def test_output_extension(tmp_path, name, message):
    with pytest.raises(ImageError, match=message):
        imageio.check_output(tmp_path / name)


def test_output_format_without_alpha(tmp_path):
    assert imageio.check_output(tmp_path / "ok.jpg") == "JPEG"
    with pytest.raises(ImageError) as e:
        imageio.check_output(tmp_path / "out.jpg", alpha=True)
    assert one_line(e) == "JPEG files cannot store transparency (an alpha channel); write out.png instead"
    assert imageio.check_output(tmp_path / "ok.webp", alpha=True) == "WEBP"


def test_16bit_written_to_8bit_formats(tmp_path):
    g = RNG.integers(0, 65536, (8, 8)).astype(np.uint16)
    out = write_image(tmp_path / "g.jpg", g)
    assert (out.mode, out.bit_depth, Image.open(out.path).mode) == ("L", 8, "L")
    tif = write_image(tmp_path / "g.tif", g)
    assert tif.bit_depth == 16 and np.array_equal(np.asarray(Image.open(tif.path)), g)
    c = RNG.integers(0, 65536, (8, 8, 3)).astype(np.uint16)
    out = write_image(tmp_path / "c.tif", c)
    assert (out.mode, out.bit_depth) == ("RGB", 8)
    assert np.abs(np.asarray(Image.open(out.path)).astype(int) - c / 257).max() <= 0.5


# ------------------------------------------------------------------------------------------------ atomic writes
@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_atomic_write_leaves_nothing_on_failure(tmp_path, exc):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def boom(fh):
        fh.write(b"partial")
        raise exc

    with pytest.raises(type(exc)):
        imageio.atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch, capsys):
    """ENOSPC from write()/fsync() carries no file name; atomic_write names the destination, and the CLI's line
    then says which file could not be written."""
    import errno

    from adasr import cli

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        imageio.atomic_write(tmp_path / "out.png", lambda fh: fh.write(b"x"))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "out.png")
    assert isinstance(info.value, OSError) and sorted(tmp_path.iterdir()) == []
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    monkeypatch.setattr("adasr.upscaling.upscale_tensor",
                        lambda x, **k: (torch.nn.functional.interpolate(x, scale_factor=4.0), None, None))
    code = cli.main(["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "-q"])
    assert code == 1
    assert capsys.readouterr().err == f"adasr: error: No space left on device: {tmp_path / 'out.png'}\n"


def test_failed_encode_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"

    def bad_encode(*a, **k):
        raise OSError("encoder exploded")

    monkeypatch.setattr(imageio, "encode_png16", bad_encode)
    with pytest.raises(OSError, match="encoder exploded"):
        write_image(target, RNG.integers(0, 65536, (8, 8, 3)).astype(np.uint16))
    assert list(tmp_path.iterdir()) == []


def test_written_file_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = write_image(tmp_path / "perm.png", rgb8())
    finally:
        os.umask(old)
    assert out.path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["perm.png"]


def test_icc_profile_carried_to_the_output(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    p = tmp_path / "icc.png"
    Image.fromarray(rgb8()).save(p, icc_profile=icc)
    im = load(p)
    assert im.icc_profile == icc
    out = write_image(tmp_path / "icc_x4.jpg", im.to_array(upscale_bicubic(im.rgb)), icc_profile=im.icc_profile)
    assert Image.open(out.path).info.get("icc_profile") == icc
    out16 = write_image(tmp_path / "icc16.png", RNG.integers(0, 65536, (8, 8, 3)).astype(np.uint16), icc_profile=icc)
    assert Image.open(out16.path).info.get("icc_profile") == icc


# ------------------------------------------------- every mode Pillow returns; integer images wider than 8 bits
def tiff(arr: np.ndarray, *, big_endian: bool = False, photometric: int | None = None, extra: int = 2) -> bytes:
    """A minimal uncompressed one-strip TIFF of ``arr`` ((H, W) or (H, W, C), any integer or float dtype), built by
    hand so that sample type, byte order and photometric interpretation are exactly what a test names (Pillow's TIFF
    writer cannot store signed 8-bit, unsigned 32-bit or min-is-white 16-bit samples). ``extra``: the ExtraSamples
    value of a 2- or 4-channel image (1 associated alpha, 2 unassociated)."""
    e = ">" if big_endian else "<"
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder(e)).tobytes()
    photometric = (1 if c < 3 else 2) if photometric is None else photometric
    kind = {"u": 1, "i": 2, "f": 3}[arr.dtype.kind]
    shorts = {258: [8 * arr.dtype.itemsize] * c, 259: [1], 262: [photometric], 277: [c], 284: [1], 339: [kind] * c}
    if c in (2, 4):
        shorts[338] = [extra]
    longs = {256: [w], 257: [h], 273: [0], 278: [h], 279: [len(data)]}
    tags = sorted([(t, 3, v) for t, v in shorts.items()] + [(t, 4, v) for t, v in longs.items()])
    out_of_line = sum(2 * len(v) for t, typ, v in tags if typ == 3 and len(v) > 2)
    pos = 8 + 2 + 12 * len(tags) + 4
    longs[273][0] = pos + out_of_line  # the strip follows the tag values that do not fit in an entry
    ifd, blob = struct.pack(e + "H", len(tags)), b""
    for tag, typ, values in tags:
        packed = struct.pack(e + ("H" if typ == 3 else "I") * len(values), *values)
        if len(packed) <= 4:
            ifd += struct.pack(e + "HHI", tag, typ, len(values)) + packed.ljust(4, b"\0")
        else:
            ifd += struct.pack(e + "HHII", tag, typ, len(values), pos + len(blob))
            blob += packed
    head = (b"MM\0*" if big_endian else b"II*\0") + struct.pack(e + "I", 8)
    return head + ifd + struct.pack(e + "I", 0) + blob + data


def ints(dtype: str, lo: int, hi: int, channels: int = 1) -> np.ndarray:
    """Random integers in lo..hi as ``dtype`` (9×10, with lo and hi themselves present: the range must survive)."""
    a = RNG.integers(lo, hi, (9, 10, channels), endpoint=True, dtype=np.int64)
    a.flat[0], a.flat[-1] = lo, hi
    return (a[:, :, 0] if channels == 1 else a).astype(dtype)


#: What a TIFF of each sample type (dtype, channels, byte order) becomes: Pillow's mode (None: Pillow cannot open
#: it) and how read_image handles it: "exact" (the values themselves, 8-bit for 8-bit samples, else 16-bit),
#: "high_byte" (Pillow keeps 8 of the 16 bits of colour TIFFs), "range" (refused: values outside 0..65535),
#: "float" (refused: mode F), "unreadable" (refused: not an image file Pillow can read).
TIFF_CASES = [
    ("u1", 1, 0, 255, False, "L", "exact"),
    ("u1", 1, 0, 255, True, "L", "exact"),
    ("i1", 1, 0, 127, False, "L", "exact"),
    ("i1", 1, -128, 127, False, "L", "range"),  # Pillow reads the raw bytes: −1 would have become 255
    ("i1", 1, -3, 100, True, "L", "range"),
    ("u2", 1, 0, 65535, False, "I;16", "exact"),
    ("u2", 1, 0, 65535, True, "I;16B", "exact"),
    ("i2", 1, 0, 32767, False, "I", "exact"),
    ("i2", 1, 0, 32767, True, "I", "exact"),
    ("i2", 1, -32768, 32767, False, "I", "range"),  # was clipped to 0: negative values became black
    ("i2", 1, -1, 100, True, "I", "range"),
    ("u4", 1, 0, 65535, False, "I", "exact"),
    ("u4", 1, 0, 65536, False, "I", "range"),  # was clipped to 65535
    ("u4", 1, 0, 2**32 - 1, False, "I", "range"),  # Pillow decodes 2**31 and up as negative numbers
    ("u4", 1, 0, 65535, True, None, "unreadable"),
    ("i4", 1, 0, 65535, False, "I", "exact"),
    ("i4", 1, 0, 65535, True, "I", "exact"),
    ("i4", 1, -5, 65535, False, "I", "range"),
    ("i4", 1, 0, 2**31 - 1, True, "I", "range"),
    ("f4", 1, 0, 1000, False, "F", "float"),
    ("f4", 1, 0, 1000, True, "F", "float"),
    ("f2", 1, 0, 1000, False, None, "unreadable"),
    ("f8", 1, 0, 1000, False, None, "unreadable"),
    ("u8", 1, 0, 1000, False, None, "unreadable"),
    ("i8", 1, 0, 1000, False, None, "unreadable"),
    ("u1", 2, 0, 255, False, "LA", "exact"),
    ("u1", 3, 0, 255, False, "RGB", "exact"),
    ("u1", 3, 0, 255, True, "RGB", "exact"),
    ("u1", 4, 0, 255, False, "RGBA", "exact"),
    ("u2", 2, 0, 65535, False, None, "unreadable"),
    ("u2", 3, 0, 65535, False, "RGB", "high_byte"),
    ("u2", 3, 0, 65535, True, "RGB", "high_byte"),
    ("u2", 4, 0, 65535, False, "RGBA", "high_byte"),
    ("i1", 3, 0, 127, False, None, "unreadable"),
    ("i2", 3, 0, 1000, False, None, "unreadable"),
    ("u4", 3, 0, 1000, False, None, "unreadable"),
]
SAMPLE_NAMES = {"i1": "signed 8-bit integer", "i2": "signed 16-bit integer", "u4": "unsigned 32-bit integer",
                "i4": "signed 32-bit integer"}


@pytest.mark.parametrize("dtype,channels,lo,hi,big_endian,pillow_mode,outcome", TIFF_CASES,
                         ids=[f"{d}x{c}-{lo}..{hi}-{'be' if be else 'le'}" for d, c, lo, hi, be, _, _ in TIFF_CASES])
def test_tiff_sample_types(tmp_path, dtype, channels, lo, hi, big_endian, pillow_mode, outcome):
    """Every TIFF sample type either reads its values (exactly, or the high byte where Pillow keeps only that) or is
    refused with one line; integers are never clipped or wrapped."""
    a = ints(dtype, lo, hi, channels)
    p = tmp_path / f"{dtype}.tif"
    p.write_bytes(tiff(a, big_endian=big_endian))
    if pillow_mode is None:
        with pytest.raises(UnidentifiedImageError):
            Image.open(p)
    else:
        assert Image.open(p).mode == pillow_mode
    if outcome in ("exact", "high_byte"):
        im = load(p)
        assert im.mode == pillow_mode and (im.height, im.width) == (9, 10)
        assert float(im.rgb.min()) >= -1 and float(im.rgb.max()) <= 1
        wide = outcome == "exact" and np.dtype(dtype).itemsize > 1
        assert im.bit_depth == (16 if wide else 8) and im.grayscale == (channels <= 2)
        want = (a >> 8 if outcome == "high_byte" else a).astype(np.uint16 if wide else np.uint8)
        got = im.to_array(im.rgb, im.alpha)
        assert got.dtype == want.dtype and np.array_equal(got, want)
        if wide:
            assert im.output_mode == "I;16"
        return
    with pytest.raises(ImageError) as e:
        load(p)
    msg = one_line(e)
    if outcome == "range":
        assert msg == (f"{p} has {SAMPLE_NAMES[dtype]} pixels from {lo} to {hi} (Pillow mode {pillow_mode}), but only "
                       f"values in 0..65535 can be read without loss; rescale it to 0..65535 (16-bit unsigned) or to "
                       f"8 bits first")
    elif outcome == "float":
        assert msg == (f"{p} holds 32-bit floating-point pixels (mode F), which are not supported; convert it to an "
                       f"8- or 16-bit image first")
    else:
        assert msg.startswith(f"{p} is not an image file Pillow can read")


def test_hand_built_tiffs_match_tifffile():
    """The test's TIFF writer stores what it is given (checked with an independent reader, where installed)."""
    tifffile = pytest.importorskip("tifffile")
    for dtype, lo, hi in [("i1", -128, 127), ("u2", 0, 65535), ("i2", -32768, 32767), ("u4", 0, 2**32 - 1),
                          ("i4", -(2**31), 2**31 - 1), ("f4", 0, 1)]:
        for big_endian in (False, True):
            a = ints(dtype, lo, hi)
            assert np.array_equal(tifffile.imread(io.BytesIO(tiff(a, big_endian=big_endian))), a)
    rgba = ints("u2", 0, 65535, 4)
    assert np.array_equal(tifffile.imread(io.BytesIO(tiff(rgba))), rgba)


@pytest.mark.parametrize("dtype", ["u1", "u2"])
def test_min_is_white_tiff(tmp_path, dtype):
    """PhotometricInterpretation 0 (0 is white): Pillow inverts 8-bit samples itself but not 16-bit ones."""
    top = 255 if dtype == "u1" else 65535
    a = ints(dtype, 0, top)
    p = tmp_path / "white0.tif"
    p.write_bytes(tiff(a, photometric=0))
    im = load(p)
    assert np.array_equal(im.to_array(im.rgb), top - a)


def test_signed_16bit_in_range_is_written_back_as_16bit(tmp_path):
    a = ints("i2", 0, 32767)
    p = tmp_path / "signed.tif"
    p.write_bytes(tiff(a))
    im = load(p)
    out = write_image(tmp_path / "signed_same.png", im.to_array(im.rgb))
    back = Image.open(out.path)
    assert back.mode == "I;16" and np.array_equal(np.asarray(back), a)


def fits32(a: np.ndarray) -> bytes:
    """A FITS file (BITPIX 32: signed 32-bit integers, which Pillow opens as mode I) of the 2-D array ``a``."""
    h, w = a.shape
    cards = ["SIMPLE  =                    T", "BITPIX  =                   32", "NAXIS   =                    2",
             f"NAXIS1  = {w:20d}", f"NAXIS2  = {h:20d}", "END"]
    head = "".join(c.ljust(80) for c in cards).ljust(2880).encode("ascii")
    data = a.astype(">i4").tobytes()
    return head + data + bytes(-len(data) % 2880)


@pytest.mark.parametrize("lo,hi", [(0, 65535), (-7, 70000)])
def test_32bit_integers_from_another_format(tmp_path, lo, hi):
    """Mode I from a format other than TIFF (FITS): the same rule; the storage is named by the array's width."""
    a = ints("i4", lo, hi)
    p = tmp_path / "wide.fits"
    p.write_bytes(fits32(a))
    assert Image.open(p).mode == "I"
    if hi <= 65535:
        im = load(p)
        assert im.bit_depth == 16 and np.array_equal(im.to_array(im.rgb), a[::-1])  # FITS rows run bottom to top
        return
    with pytest.raises(ImageError) as e:
        load(p)
    assert one_line(e) == (f"{p} has 32-bit integer pixels from {lo} to {hi} (Pillow mode I), but only values in "
                           f"0..65535 can be read without loss; rescale it to 0..65535 (16-bit unsigned) or to 8 bits "
                           f"first")


def _mode_file(tmp_path: Path, mode: str) -> tuple[Path, np.ndarray | None]:
    """A 9×10 file whose Pillow mode is ``mode`` (and the exact 16-bit values for integer modes)."""
    g16 = ints("u2", 0, 65535)
    if mode in ("I;16", "I;16B", "I;16L"):  # PNG, TIFF big-endian, IM little-endian (IM: the one reader of I;16L)
        if mode == "I;16L" and "IM" not in Image.SAVE:
            pytest.skip("this Pillow no longer has the IM format, the one file format that opens as I;16L")
        fmt = {"I;16": "png", "I;16B": "tif", "I;16L": "im"}[mode]
        order = ">u2" if mode == "I;16B" else "<u2"
        src = Image.frombytes(mode, (10, 9), g16.astype(order).tobytes())
        p = tmp_path / f"m.{fmt}"
        src.save(p)
        return p, g16
    if mode == "I":
        p = tmp_path / "m.pgm"  # a 16-bit PGM: Pillow's mode I
        p.write_bytes(b"P5\n10 9\n65535\n" + g16.astype(">u2").tobytes())
        return p, g16
    if mode == "La":  # gray + associated (premultiplied) alpha
        p = tmp_path / "m.tif"
        p.write_bytes(tiff(ints("u1", 0, 255, 2), extra=1))
        return p, None
    src = Image.fromarray(rgb8(9, 10)).convert("RGBA" if mode in ("PA", "LA") else "RGB")
    if mode in ("1", "L", "LA", "P", "PA"):
        src = src.convert(mode)
    elif mode != "RGB":
        src = src.convert("RGBA" if mode == "RGBA" else mode)
    fmt = {"CMYK": "tif", "YCbCr": "tif", "LAB": "tif", "PA": "tif", "F": "tif"}.get(mode, "png")
    p = tmp_path / f"m.{fmt}"
    src.save(p)
    return p, None


#: Every mode a file can have in Pillow (the other members of Image.MODES: RGBX, RGBa, HSV, I;16N, are in-memory
#: modes that no reader returns; test_every_pillow_mode_is_handled covers them).
FILE_MODES = ["1", "L", "LA", "La", "P", "PA", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA", "CMYK", "YCbCr",
              "LAB"]


@pytest.mark.filterwarnings("ignore:IM image format is deprecated:DeprecationWarning")
@pytest.mark.parametrize("mode", FILE_MODES)
def test_every_file_mode(tmp_path, mode):
    """Each mode reads as Pillow's own conversion to the output mode (16-bit integers: the stored values), or, for
    F, is refused."""
    p, values = _mode_file(tmp_path, mode)
    src = Image.open(p)
    assert src.mode == mode
    if mode == "F":
        with pytest.raises(ImageError, match=r"32-bit floating-point pixels \(mode F\)"):
            load(p)
        return
    im = load(p)
    assert im.mode == mode and (im.height, im.width) == (9, 10)
    got = im.to_array(im.rgb, im.alpha)
    if values is not None:
        assert im.bit_depth == 16 and im.output_mode == "I;16" and np.array_equal(got, values)
    else:
        assert im.bit_depth == 8
        assert np.array_equal(got, np.asarray(src.convert(im.output_mode)))


@pytest.mark.parametrize("mode", sorted(Image.MODES))
def test_every_pillow_mode_is_handled(mode):
    """Every mode Pillow has (in-memory ones included) gives gray or RGB arrays, or an ImageError (F)."""
    src = Image.new(mode, (6, 5))
    if mode == "F":
        with pytest.raises(ImageError, match="mode F"):
            imageio._pil_arrays(src)
        return
    arr, alpha, gray, depth = imageio._pil_arrays(src)
    assert arr.shape == ((5, 6) if gray else (5, 6, 3)) and arr.dtype == (np.uint16 if depth == 16 else np.uint8)
    assert alpha is None or alpha.shape == (5, 6)
    assert depth == (16 if mode.startswith("I") else 8)
