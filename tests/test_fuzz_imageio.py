"""Fuzzing :func:`adasr.imageio.read_image`, and the CLI's input check, with damaged image files: every damaged file
either decodes to a valid :class:`~adasr.imageio.LoadedImage` or is refused with one :class:`~adasr.imageio.ImageError`
line; no other exception escapes, and ``adasr upscale`` answers with exit status 0 or 2 and one error line.

Why a seeded mutator and not hypothesis: hypothesis is not installed in the project's environment (nor a dependency),
and the cases here are mutations of real files, which a small hand-written mutator covers directly (bit flips,
interesting byte values, truncation, chunk duplication and deletion, random header bytes, random length fields, and
for PNG damaged image data and header fields behind valid CRCs). Case ``i`` of seed image ``s`` is drawn from
``numpy.random.default_rng([SEED, s, i])``, so every run sees the same cases (a few hundred, a few seconds), and a
failure names the case that reproduces it exactly (:func:`mutated`). For a longer run, ``ADASR_FUZZ_CASES`` sets the
number of cases per seed image and ``ADASR_FUZZ_SEED`` draws other ones (over 100 000 cases were run while writing
this module).

The regression tests at the end keep each crash the fuzzer found (exceptions other than ImageError), as a recipe: a
seed image and the mutation, built here, not stored as binary files.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import png  # pypng
import pytest
from PIL import Image

from adasr import cli, imageio
from adasr.data import upscale_bicubic
from adasr.imageio import ImageError, LoadedImage, read_image

SEED = int(os.environ.get("ADASR_FUZZ_SEED", "20240611"))
#: Mutated files per seed image (16 seeds: 480 read_image cases), and how many of them also go through the CLI.
CASES = int(os.environ.get("ADASR_FUZZ_CASES", "30"))
CLI_CASES = 60
SIZE = 20  # the seed images are SIZE×SIZE


# ------------------------------------------------------------------------------------------------------ seed images
def _pil(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _seed_images() -> dict[str, tuple[str, bytes]]:
    """name → (suffix, bytes) of small valid files of every kind the fuzzer starts from."""
    rng = np.random.default_rng(SEED)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (SIZE, SIZE), dtype=np.uint16)
    pal = Image.fromarray(rng.integers(0, 16, (SIZE, SIZE), dtype=np.uint8), mode="L").convert("P")
    pal.putpalette(rng.integers(0, 256, 48, dtype=np.uint8).tolist())
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated, so the EXIF and transposition paths run
    rgb16 = io.BytesIO()
    png.Writer(SIZE, SIZE, greyscale=False, bitdepth=16, interlace=True).write(
        rgb16, rng.integers(0, 65536, (SIZE, SIZE * 3)).tolist())
    return {
        "png_rgb8": ("png", _pil(Image.fromarray(rgb), "PNG")),
        "png_gray16": ("png", _pil(Image.fromarray(g16), "PNG")),
        "png_palette_trns": ("png", _pil(pal, "PNG", transparency=3)),
        "png_rgba16": ("png", imageio.encode_png16(rng.integers(0, 65536, (SIZE, SIZE, 4), dtype=np.uint16))),
        "png_rgb16_adam7": ("png", rgb16.getvalue()),
        "png_exif": ("png", _pil(Image.fromarray(rgb), "PNG", exif=exif)),
        "jpeg": ("jpg", _pil(Image.fromarray(rgb), "JPEG", quality=80)),
        "jpeg_exif": ("jpg", _pil(Image.fromarray(rgb), "JPEG", quality=80, exif=exif)),
        "tiff_rgb8": ("tif", _pil(Image.fromarray(rgb), "TIFF")),
        "tiff_rgb8_lzw": ("tif", _pil(Image.fromarray(rgb), "TIFF", compression="tiff_lzw")),
        "tiff_gray16": ("tif", _pil(Image.fromarray(g16), "TIFF")),
        "tiff_int32": ("tif", _pil(Image.fromarray(g16.astype(np.int32)), "TIFF")),
        "webp": ("webp", _pil(Image.fromarray(rgb), "WEBP", quality=80)),
        "webp_lossless_rgba": ("webp", _pil(Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])), "WEBP", lossless=True)),
        "bmp": ("bmp", _pil(Image.fromarray(rgb), "BMP")),
        "gif": ("gif", _pil(pal, "GIF", transparency=3)),
    }


SEEDS = _seed_images()


# ---------------------------------------------------------------------------------------------------------- mutator
INTERESTING_BYTES = (0x00, 0xFF, 0x7F, 0x80, 0x01)
INTERESTING_WORDS = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def png_chunks(data: bytes) -> tuple[bytes, list[bytes]]:
    """(signature, chunks as stored: length, type, body, CRC); a damaged tail is kept as a last short chunk."""
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        end = min(len(data), pos + 12 + struct.unpack(">I", data[pos:pos + 4])[0])
        chunks.append(data[pos:end])
        pos = end
    return data[:8], chunks


def fix_png_crcs(data: bytes) -> bytes:
    """``data`` with every PNG chunk's CRC recomputed, so that damage inside a chunk reaches the decoders."""
    sig, chunks = png_chunks(data)
    return sig + b"".join(c[:-4] + struct.pack(">I", zlib.crc32(c[4:-4]) & 0xFFFFFFFF) if len(c) >= 12 else c
                          for c in chunks)


def _mutate_once(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One mutation of ``kind`` (see :data:`KINDS`) drawn from ``rng``."""
    b, n = bytearray(data), len(data)
    sig, chunks = png_chunks(data) if data[:8] == b"\x89PNG\r\n\x1a\n" else (b"", [])
    is_png = bool(chunks)  # a PNG signature followed by at least one chunk
    pick: Callable[[int], int] = lambda k: int(rng.integers(0, max(k, 1)))  # noqa: E731 - 0 … k−1 (0 if k < 1)
    if kind == "bitflip":
        for _ in range(1 + pick(8)):
            b[pick(n)] ^= 1 << pick(8)
    elif kind == "interesting":
        for _ in range(1 + pick(4)):
            b[pick(n)] = INTERESTING_BYTES[pick(len(INTERESTING_BYTES))]
    elif kind == "truncate":
        del b[pick(n):]
    elif kind == "header":
        for _ in range(1 + pick(4)):
            b[pick(min(n, 64))] = pick(256)
    elif kind == "length" and is_png:  # a chunk's length field
        k = pick(len(chunks))
        chunks[k] = struct.pack(">I", INTERESTING_WORDS[pick(len(INTERESTING_WORDS))]) + chunks[k][4:]
        b = bytearray(sig + b"".join(chunks))
    elif kind == "length":  # a 16- or 32-bit field near the start (sizes, offsets, counts), either byte order
        width = 2 if pick(2) else 4
        off = pick(max(1, min(n, 128) - width))
        value = INTERESTING_WORDS[pick(len(INTERESTING_WORDS))] & ((1 << 8 * width) - 1)
        b[off:off + width] = value.to_bytes(width, "little" if pick(2) else "big")
    elif kind == "chunk" and is_png:  # delete or duplicate a whole chunk
        k = pick(len(chunks))
        if pick(2):
            del chunks[k]
        else:
            chunks.insert(k, chunks[k])
        b = bytearray(sig + b"".join(chunks))
    elif kind == "chunk":  # delete or duplicate a slice
        start, length = pick(n), 1 + pick(64)
        if pick(2):
            del b[start:start + length]
        else:
            b[start:start] = b[start:start + length]
    elif kind == "entry" and data[:4] in (b"II*\0", b"MM\0*") and n >= 8:  # a TIFF tag: type, count or value
        e = "<" if data[:2] == b"II" else ">"
        ifd = struct.unpack(e + "I", data[4:8])[0]
        count = struct.unpack(e + "H", data[ifd:ifd + 2])[0] if ifd + 2 <= n else 0
        if count == 0 or ifd + 2 + 12 * count > n:
            return data
        entry = ifd + 2 + 12 * pick(count)
        field = pick(3)
        if field == 0:
            b[entry + 2:entry + 4] = struct.pack(e + "H", 1 + pick(13))  # the 13 TIFF field types
        else:
            word = INTERESTING_WORDS[pick(len(INTERESTING_WORDS))] if pick(2) else pick(70000)
            b[entry + 4 * field:entry + 4 * field + 4] = struct.pack(e + "I", word)
    elif kind == "pixels" and is_png:  # damage the decompressed image data (filter bytes, samples), recompress
        try:
            raw = bytearray(zlib.decompress(b"".join(c[8:-4] for c in chunks if c[4:8] == b"IDAT")))
        except zlib.error:
            return data
        if not raw:  # no image data left to damage
            return data
        for _ in range(1 + pick(4)):
            raw[pick(len(raw))] = INTERESTING_BYTES[pick(5)] if pick(2) else pick(256)
        if pick(3) == 0:
            del raw[pick(len(raw)):]
        z = zlib.compress(bytes(raw))
        idat = [struct.pack(">I", len(z)) + b"IDAT" + z + b"\0\0\0\0"]
        first = next(i for i, c in enumerate(chunks) if c[4:8] == b"IDAT")
        b = bytearray(sig + b"".join(chunks[:first] + idat + [c for c in chunks[first:] if c[4:8] != b"IDAT"]))
    elif kind == "ihdr" and n >= 29:  # one IHDR field: width, height, depth, colour type, methods, interlace
        offset, width = ((16, 4), (20, 4), (24, 1), (25, 1), (26, 1), (27, 1), (28, 1))[pick(7)]
        values = (0, 1, 7, 8, 19, 21, 40, 65536, 0x7FFFFFFF) if width == 4 else (0, 1, 2, 3, 4, 6, 8, 16, 255)
        b[offset:offset + width] = values[pick(len(values))].to_bytes(width, "big")
    out = bytes(b)
    if is_png and out[:8] == data[:8] and (kind in ("pixels", "ihdr") or pick(2)):
        out = fix_png_crcs(out)
    return out


#: The mutations. PNG files also get "pixels" and "ihdr" (whose CRCs are then fixed), TIFF files "entry" (damaged tag
#: entries: where most of the crashes were).
KINDS = ("bitflip", "interesting", "truncate", "header", "length", "chunk")
EXTRA_KINDS = {"png": ("pixels", "ihdr", "pixels"), "tif": ("entry", "entry", "entry")}


def mutated(seed: str, case: int) -> tuple[bytes, list[str]]:
    """Case ``case`` of seed image ``seed``: the damaged bytes and the mutations applied (one to three)."""
    suffix, data = SEEDS[seed]
    rng = np.random.default_rng([SEED, list(SEEDS).index(seed), case])
    kinds = KINDS + EXTRA_KINDS.get(suffix, ())
    applied = []
    for _ in range(1 + int(rng.integers(0, 3))):
        if not data:
            break
        kind = kinds[int(rng.integers(0, len(kinds)))]
        data = _mutate_once(data, kind, rng)
        applied.append(kind)
    return data, applied


# --------------------------------------------------------------------------------------------------------- checking
def check_read(path: Path) -> str:
    """read_image on a damaged file: "ok" (a valid LoadedImage) or "refused" (one ImageError line); anything else,
    and any warning Pillow would print, fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            im = read_image(path, min_side=1)
        except ImageError as exc:
            assert "\n" not in str(exc) and str(exc)
            outcome = "refused"
        else:
            assert isinstance(im, LoadedImage)
            x = im.rgb.numpy()
            assert x.dtype == np.float32 and x.shape == (1, 3, im.height, im.width) and min(x.shape) > 0
            assert np.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
            if im.alpha is not None:
                a = im.alpha.numpy()
                assert a.shape == (1, 1, im.height, im.width) and a.min() >= 0 and a.max() <= 1
            outcome = "ok"
    pillow = [str(w.message) for w in caught if "PIL" in w.filename]
    assert not pillow, f"Pillow warnings escaped read_image: {pillow}"
    return outcome


@pytest.mark.parametrize("seed", list(SEEDS))
def test_unmutated_seeds_read(tmp_path, seed):
    suffix, data = SEEDS[seed]
    p = tmp_path / f"seed.{suffix}"
    p.write_bytes(data)
    assert check_read(p) == "ok"


@pytest.mark.parametrize("seed", list(SEEDS))
def test_fuzz_read_image(tmp_path, seed):
    """CASES damaged copies of one seed image: each decodes to a valid image or is refused with an ImageError."""
    suffix = SEEDS[seed][0]
    failures, outcomes = [], {"ok": 0, "refused": 0}
    for case in range(CASES):
        data, kinds = mutated(seed, case)
        p = tmp_path / f"case{case}.{suffix}"
        p.write_bytes(data)
        try:
            outcomes[check_read(p)] += 1
        except Exception as exc:  # noqa: BLE001 - AssertionError and crashes alike: collected, reported with the case
            failures.append(f"mutated({seed!r}, {case}) [{', '.join(kinds)}]: {type(exc).__name__}: {exc}")
        p.unlink()
    assert not failures, "\n".join(failures)
    assert outcomes["refused"] > 0  # the mutations do damage the files


class _Report(SimpleNamespace):
    """The least of an UpscaleReport the CLI touches with -q (nothing, unless --report is given)."""

    def to_dict(self) -> dict:
        return {"steps": 0, "tiles": 1, "tile_evaluations": 0}


def _cli_cases() -> list[tuple[str, int]]:
    """CLI_CASES (seed, case) pairs spread over all seed images and cases."""
    pairs = [(seed, case) for case in range(CASES) for seed in SEEDS]
    step = max(1, len(pairs) // CLI_CASES)
    return pairs[::step][:CLI_CASES]


def test_fuzz_cli_input_check(tmp_path, monkeypatch, capsys):
    """``adasr upscale damaged -o out.png -q`` with a bicubic stand-in for the model: exit status 0 (and an output
    file) or 2 with exactly one ``adasr: error:`` line; never a traceback or an "unexpected" error."""
    import adasr.upscaling as up

    monkeypatch.setattr(up, "upscale_tensor", lambda x, **kw: (upscale_bicubic(x), _Report(), None))
    monkeypatch.delenv("ADASR_DEBUG", raising=False)
    failures, codes = [], {0: 0, 2: 0}
    for seed, case in _cli_cases():
        data, kinds = mutated(seed, case)
        src, out = tmp_path / f"in.{SEEDS[seed][0]}", tmp_path / "out.png"
        src.write_bytes(data)
        code = cli.main(["upscale", str(src), "-o", str(out), "-q"])
        stdout, err = capsys.readouterr()
        lines = err.splitlines()
        ok = (code == 0 and not err and out.is_file()) or (
            code == 2 and len(lines) == 1 and lines[0].startswith("adasr: error: ") and not out.exists())
        if not ok or "Traceback" in err or "unexpected" in err:
            failures.append(f"mutated({seed!r}, {case}) [{', '.join(kinds)}]: exit {code}, stderr {err!r}")
        codes[code] = codes.get(code, 0) + 1
        out.unlink(missing_ok=True)
    assert not failures, "\n".join(failures)
    assert codes[0] > 0 and codes[2] > 0


def test_mutator_is_deterministic():
    assert mutated("png_gray16", 7) == mutated("png_gray16", 7)
    assert mutated("png_gray16", 7)[0] != mutated("png_gray16", 8)[0]


# ------------------------------------------------------------------ regressions: the crashes the fuzzer found
def _retype_tiff_tag(data: bytes, tag: int, new_type: int) -> bytes:
    """``data`` (a little-endian TIFF) with the stored type of ``tag``'s first-IFD entry replaced (count and value
    bytes unchanged), as a single damaged byte does."""
    assert data[:4] == b"II*\0"
    ifd = struct.unpack("<I", data[4:8])[0]
    for k in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack("<H", data[entry:entry + 2])[0] == tag:
            return data[:entry + 2] + struct.pack("<H", new_type) + data[entry + 4:]
    raise AssertionError(f"tag {tag} not found")


#: (seed image, new type of StripOffsets, what escaped read_image before the fix): the strip offsets stored as text,
#: a rational, undefined bytes, a signed rational, a float or a double reach Pillow's decoder setup unchecked
#: (found by the fuzzer as one damaged byte: the "entry" mutation of a tag's type field, also plain bit flips).
TIFF_OFFSET_TYPES = [
    ("tiff_rgb8", 2, "TypeError: 'str' object cannot be interpreted as an integer"),
    ("tiff_rgb8", 5, "TypeError: 'IFDRational' object cannot be interpreted as an integer"),
    ("tiff_rgb8", 7, "TypeError: 'bytes' object cannot be interpreted as an integer"),
    ("tiff_rgb8", 10, "TypeError: 'IFDRational' object cannot be interpreted as an integer"),
    ("tiff_rgb8", 11, "TypeError: 'float' object cannot be interpreted as an integer"),
    ("tiff_rgb8", 12, "TypeError: 'float' object cannot be interpreted as an integer"),
    ("tiff_gray16", 2, "TypeError: '<' not supported between instances of 'str' and 'int'"),
    ("tiff_gray16", 7, "TypeError: '<' not supported between instances of 'bytes' and 'int'"),
]


@pytest.mark.parametrize("seed,new_type,was", TIFF_OFFSET_TYPES, ids=[f"{s}-type{t}" for s, t, _ in TIFF_OFFSET_TYPES])
def test_tiff_strip_offsets_of_wrong_type_are_refused(tmp_path, seed, new_type, was):
    p = tmp_path / "retyped.tif"
    p.write_bytes(_retype_tiff_tag(SEEDS[seed][1], 273, new_type))
    with pytest.raises(ImageError) as e:
        read_image(p)
    msg = str(e.value)
    assert msg.startswith(f"{p} is truncated or corrupt (") and msg.endswith("); re-export or re-download it")
    assert "\n" not in msg


def exif_with(tag: int, typ: int, value: bytes) -> bytes:
    """An EXIF block (big-endian) with Orientation 6 and one more entry, stored with the given type and (at most 4)
    value bytes, as Pillow reads it from a file."""
    entries = sorted([(0x0112, 3, 1, struct.pack(">HH", 6, 0)), (tag, typ, len(value), value.ljust(4, b"\0"))])
    ifd = struct.pack(">H", len(entries)) + b"".join(struct.pack(">HHI", t, ty, n) + v for t, ty, n, v in entries)
    return b"Exif\0\0MM\0*" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)


#: A known tag stored with another type than Pillow's table gives it (ColorMap is SHORT, WhitePoint RATIONAL; here
#: both ASCII): ImageOps.exif_transpose re-encoded the EXIF after rotating and raised struct.error / TypeError, for a
#: file whose pixels are fine (found by mutating the tag numbers of DateTime and Make in a JPEG's, PNG's and WebP's
#: EXIF).
EXIF_CASES = [(0x0140, "struct.error: required argument is not an integer"),
              (0x013E, "TypeError: bad operand type for abs(): 'str'")]


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("tag,was", EXIF_CASES, ids=["ColorMap-as-text", "WhitePoint-as-text"])
def test_exif_tag_of_wrong_type_still_rotates(tmp_path, fmt, tag, was):
    a = np.random.default_rng(1).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    p = tmp_path / f"exif.{fmt.lower()}"
    options = {"JPEG": {"quality": 100, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})
    p.write_bytes(_pil(Image.fromarray(a), fmt, exif=exif_with(tag, 2, b"abc\0"), **options))
    im = read_image(p)
    assert (im.height, im.width) == (20, 12)  # orientation 6 applied
    got = im.to_array(im.rgb).astype(int)
    assert np.abs(got - np.rot90(a, -1)).max() <= (0 if fmt == "PNG" else 8)


@pytest.mark.parametrize("drop", [(b"PLTE",), (b"PLTE", b"tRNS")], ids=["no-PLTE", "no-PLTE-no-tRNS"])
def test_palette_png_without_its_palette_is_refused(tmp_path, drop):
    """A palette PNG whose PLTE chunk is gone (the fuzzer's "chunk" deletion): Pillow opens it as mode P with no
    palette, then fails an internal assert (AssertionError escaped read_image) or, with a tRNS chunk, gave black."""
    sig, chunks = png_chunks(SEEDS["png_palette_trns"][1])
    p = tmp_path / "no_palette.png"
    p.write_bytes(sig + b"".join(c for c in chunks if c[4:8] not in drop))
    with pytest.raises(ImageError) as e:
        read_image(p)
    assert str(e.value) == f"{p} is corrupt (a palette image without a palette); re-export or re-download it"


def test_pillow_warnings_are_not_shown(tmp_path):
    """A TIFF tag whose value lies past the end of the file: Pillow skips it with a UserWarning (which the CLI would
    print as extra stderr lines); read_image decodes the image without letting the warning out."""
    rgb = np.random.default_rng(2).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    data = bytearray(_pil(Image.fromarray(rgb), "TIFF", tiffinfo={305: "a program name, stored out of line"}))
    ifd = struct.unpack("<I", data[4:8])[0]
    entries = [ifd + 2 + 12 * k for k in range(struct.unpack("<H", data[ifd:ifd + 2])[0])]
    software = next(e for e in entries if struct.unpack("<H", data[e:e + 2])[0] == 305)
    data[software + 8:software + 12] = struct.pack("<I", 10**6)  # the Software text's offset: past the end
    p = tmp_path / "skipped_tag.tif"
    p.write_bytes(bytes(data))
    with pytest.warns(UserWarning):  # "Tag data larger than file", "Truncated File Read"
        Image.open(p).load()
    assert check_read(p) == "ok"
    im = read_image(p)
    assert np.array_equal(im.to_array(im.rgb), rgb)
