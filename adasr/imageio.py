"""Reading and writing images for the command line: every bad input becomes one clear :class:`ImageError`.

:func:`read_image` opens a file with Pillow, fully decodes it (a truncated file is refused, never padded), applies
the EXIF orientation and returns a :class:`LoadedImage`: the colour as a float tensor ``(1, 3, h, w)`` in [−1, 1]
(the model's convention, see :mod:`adasr.data`), the alpha channel (if any) as ``(1, 1, h, w)`` in [0, 1], and what
is needed to write the result back the way the input was stored:

=================================  ==================================  ==================================
input (Pillow mode)                what the model sees                 written back as
=================================  ==================================  ==================================
``L``, ``1``                       gray replicated to RGB              8-bit gray (``L``)
``I;16``, ``I;16B``, ``I;16L`` …   gray replicated, 16-bit exact       16-bit gray
``I`` (signed or 32-bit integers)  16-bit exact if all in 0..65535     16-bit gray (other values refused)
signed 8-bit TIFF (``L``)          8-bit exact if none is negative     8-bit gray (negatives refused)
``LA``, ``La``                     gray replicated; alpha bicubic      gray + alpha (``LA``)
``RGB``, ``CMYK``, ``YCbCr`` …     RGB                                 ``RGB``
``RGBA``, ``RGBa``, ``PA``         RGB; alpha bicubic ×4               ``RGBA``
``P`` (palette)                    RGB (RGBA with transparency)        ``RGB`` / ``RGBA``
16-bit RGB / RGBA / LA PNG         full 16-bit precision               16-bit PNG of the same type
16-bit RGB / RGBA TIFF             8-bit (Pillow keeps the high byte)  ``RGB`` / ``RGBA``
``F`` (32-bit float)               refused                             —
=================================  ==================================  ==================================

Pillow decodes 16-bit colour PNGs to 8 bits and cannot write them, so those are read and written with pypng (a
pure-Python PNG codec). A colour key (``tRNS``) becomes an alpha channel. Pillow also reduces 16-bit colour TIFFs to
8 bits (the high byte of each sample) and no other TIFF decoder is used: convert those to 16-bit PNG to keep 16 bits.

Integer gray images wider than 8 bits follow one rule, whatever Pillow's mode for them (``I;16…`` for unsigned 16-bit,
``I`` for signed 16/32-bit and unsigned 32-bit samples): if every pixel lies in 0..65535 the values are read exactly,
as 16-bit gray; if any lies outside (a negative value in a signed image, one above 65535 in a 32-bit image) the file
is refused, naming the range found, because no fixed mapping to 16 bits would be right for every such image. Pillow's
own conversions would clip or wrap silently, so they are never used: unsigned 32-bit TIFF samples (which Pillow
decodes as signed) are reinterpreted, signed 8-bit TIFF samples (which Pillow decodes as unsigned bytes) are checked
the same way, and a 16-bit "min-is-white" TIFF (which Pillow leaves as stored) is inverted like the 8-bit ones.

:func:`check_output` validates a destination *before* any model work (folder exists and is writable, the extension
is a format Pillow writes, the format can hold transparency when needed); :func:`write_image` writes atomically
(temporary file in the destination folder, then :func:`os.replace`), so a failed or interrupted run never leaves a
partial output file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import numpy as np
import png  # pypng
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .defaults import DEFAULT_OVERLAP, DEFAULT_TILE

#: Smallest accepted side of an input image, in pixels. Below this there is too little context for the model to
#: add detail (bicubic is as good), and a 1×1 "image" is almost always a mistake.
MIN_SIDE = 8
#: The ×4 factor of the shipped model (used for alpha upscaling).
SCALE = 4
#: Suffixes suggested in error messages.
SUGGESTED_SUFFIXES = ".png, .jpg, .webp, .tif or .bmp"
#: Extra ``Image.save`` options per format (the defaults for JPEG/WebP throw away much of the added detail).
_SAVE_OPTIONS: dict[str, dict[str, object]] = {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"quality": 95}}
_EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """An input or output image problem the user can fix; the message is one line that says how."""


# ------------------------------------------------------------------------------------------------ loaded image
@dataclass(frozen=True)
class LoadedImage:
    """A decoded input image, ready for the model, and how to store the model's output like it.

    ``rgb``: float32 ``(1, 3, h, w)`` in [−1, 1] (gray inputs are replicated to three channels);
    ``alpha``: float32 ``(1, 1, h, w)`` in [0, 1] or ``None``; ``mode``: the source's Pillow mode (``"RGB;16"``,
    ``"RGBA;16"``, ``"LA;16"`` for 16-bit colour PNGs, which Pillow has no mode for); ``bit_depth``: 8 or 16 (the
    precision kept in ``rgb`` and used when writing); ``grayscale``: write the result back as gray;
    ``icc_profile``: the source's ICC profile when it still applies to the output (RGB or gray sources).
    """

    rgb: torch.Tensor
    alpha: torch.Tensor | None
    mode: str
    bit_depth: int
    grayscale: bool
    path: Path | None = None
    format: str | None = None
    icc_profile: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[-2])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[-1])

    @property
    def output_mode(self) -> str:
        """The mode the result is written in (before any reduction a target format forces): ``L``, ``LA``,
        ``RGB``, ``RGBA``, or the same with ``;16`` for 16 bits per channel (``I;16`` for 16-bit gray)."""
        base = ("L" if self.grayscale else "RGB") + ("A" if self.alpha is not None else "")
        if self.bit_depth == 16:
            return "I;16" if base == "L" else base + ";16"
        return base

    def upscaled_alpha(self, scale: int = SCALE) -> torch.Tensor | None:
        """The alpha channel enlarged ×``scale`` by bicubic interpolation, clamped to [0, 1] (``None`` if opaque)."""
        if self.alpha is None:
            return None
        return F.interpolate(self.alpha, scale_factor=float(scale), mode="bicubic", align_corners=False).clamp(0, 1)

    def to_array(self, rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> np.ndarray:
        """An upscaled ``rgb`` (1, 3, H, W) in [−1, 1] (+ ``alpha`` (1, 1, H, W) in [0, 1]) as an array in this
        image's storage: uint8 or uint16, shape (H, W) for gray, (H, W, 2) gray+alpha, (H, W, 3) or (H, W, 4).

        Gray images are written as the mean of the three output channels. ``alpha`` is required exactly when the
        source had an alpha channel (use :meth:`upscaled_alpha`).
        """
        if rgb.ndim != 4 or rgb.shape[0] != 1 or rgb.shape[1] != 3:
            raise ValueError(f"expected an RGB tensor of shape (1, 3, H, W), got {tuple(rgb.shape)}")
        if (alpha is None) != (self.alpha is None):
            raise ValueError("alpha must be given exactly when the source image has an alpha channel")
        maxval = 65535 if self.bit_depth == 16 else 255
        dtype = np.uint16 if self.bit_depth == 16 else np.uint8
        x = rgb.detach().float().cpu().clamp(-1, 1)[0]
        if self.grayscale:
            x = x.mean(dim=0, keepdim=True)
        planes = [((x + 1) * (maxval / 2)).round()]
        if alpha is not None:
            if alpha.shape[-2:] != rgb.shape[-2:]:
                raise ValueError(f"alpha size {tuple(alpha.shape[-2:])} differs from the image's "
                                 f"{tuple(rgb.shape[-2:])}")
            planes.append((alpha.detach().float().cpu().clamp(0, 1)[0] * maxval).round())
        arr = torch.cat(planes).permute(1, 2, 0).numpy().astype(dtype)
        return arr[:, :, 0] if arr.shape[2] == 1 else np.ascontiguousarray(arr)

    def to_pil(self, rgb: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
        """Like :meth:`to_array` but as a Pillow image (``L``, ``LA``, ``RGB``, ``RGBA`` or ``I;16``). Pillow has no
        16-bit colour modes: for those the result is reduced to 8 bits (use :meth:`to_array` + :func:`write_image`
        to keep 16 bits)."""
        return _array_to_pil(self.to_array(rgb, alpha))


# ------------------------------------------------------------------------------------------------------------- memory
def available_memory_bytes() -> int:
    """Memory this process can use now: ``MemAvailable`` from /proc/meminfo (else physical memory from
    ``os.sysconf``), capped by a cgroup v2 memory limit when one is set."""
    avail: int | None = None
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    if avail is None:
        avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            avail = min(avail, max(0, int(limit) - used))
    return int(avail)


def estimate_upscale_bytes(h: int, w: int, *, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> int:
    """Peak memory of upscaling an h×w input (delegates to :func:`adasr.upscaling.estimate_memory_bytes`)."""
    from .upscaling import estimate_memory_bytes

    return int(estimate_memory_bytes(h, w, tile=tile, overlap=overlap))


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def ensure_fits_in_memory(h: int, w: int, *, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                          name: str = "the image", available: int | None = None) -> None:
    """Raise :class:`ImageError` when upscaling an h×w input would need more memory than is available; the
    message gives both amounts and the largest square piece that would fit."""
    need = estimate_upscale_bytes(h, w, tile=tile, overlap=overlap)
    avail = available_memory_bytes() if available is None else available
    if need <= avail:
        return
    lo, hi = 0, max(h, w)  # largest square side s with estimate(s, s) <= avail (estimates grow with size)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if estimate_upscale_bytes(mid, mid, tile=tile, overlap=overlap) <= avail:
            lo = mid
        else:
            hi = mid - 1
    hint = (f"crop it into pieces of at most about {lo}×{lo} pixels or downscale it first" if lo >= MIN_SIDE
            else "free some memory (close other programs) or use a machine with more RAM")
    raise ImageError(f"{name} is {w}×{h} pixels: upscaling it needs about {_gib(need)} of memory but only "
                     f"{_gib(avail)} is available; {hint}")


# --------------------------------------------------------------------------------------------------------------- read
def read_image(path: str | os.PathLike[str], *, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
               check_memory: bool = True, min_side: int = MIN_SIDE) -> LoadedImage:
    """Open, validate and fully decode an image file for the ×4 model (see the module docstring).

    Raises :class:`ImageError` (one line, saying what to do) for a missing file, a folder, an unreadable file, a
    file that is not an image, a truncated or corrupt image, one smaller than ``min_side`` on a side, one too large
    for the available memory (``check_memory``, using ``tile``/``overlap`` as the upscaler will) or over Pillow's
    decompression-bomb limit, 32-bit float images, and integer images with values outside 0..65535 (negative values
    in a signed image, values above 65535 in a 32-bit one: rescale those first). Integer images whose values all lie
    in 0..65535 are read exactly, as 16-bit gray, whatever their storage (signed, 32-bit). Multi-frame files (animated
    GIF/PNG, multi-page TIFF) give their first frame. Damaged metadata that Pillow skips with a warning (EXIF, TIFF
    tags) does not stop a file whose pixels decode; those warnings are not shown.
    """
    p = Path(path)
    _check_readable(p)
    with warnings.catch_warnings():
        # Pillow warns between its two pixel limits; check_memory decides instead. Above the upper one it raises.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # Pillow's notes about metadata it skipped ("Corrupt EXIF data", "Tag data larger than file"…) would be
        # extra stderr lines around the one-line outcome: the pixels decode (and are used) or the file is refused.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        return _decode(p, tile=tile, overlap=overlap, check_memory=check_memory, min_side=min_side)


#: What Pillow raises for a damaged or unsupported file while opening or decoding it. TypeError: TIFF tags of the
#: wrong type (a strip offset stored as a float, a rational or text) reach Pillow's decoder setup unchecked.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, TypeError, EOFError, struct.error, zlib.error)
#: EXIF orientation → the Pillow transposition that undoes it (as :func:`PIL.ImageOps.exif_transpose`).
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _decode(p: Path, *, tile: int, overlap: int, check_memory: bool, min_side: int) -> LoadedImage:
    """The body of :func:`read_image` for a readable file ``p`` (run with Pillow's warnings filtered)."""
    try:
        im = Image.open(p)
    except Image.DecompressionBombError as exc:
        raise ImageError(_bomb_message(p, exc)) from None
    except UnidentifiedImageError:
        if p.stat().st_size == 0:
            raise ImageError(f"{p} is empty (0 bytes); give an image file such as a PNG or JPEG") from None
        raise ImageError(f"{p} is not an image file Pillow can read (is it really a "
                         f"{p.suffix or 'picture'} file?); convert it to PNG or JPEG first") from None
    except PermissionError:
        raise ImageError(f"cannot read {p}: permission denied; check the file's permissions") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{p} is corrupt ({_one_line(exc)}); re-export or re-download it") from None
    with im:
        w, h = im.size
        if w < min_side or h < min_side:
            raise ImageError(f"{p} is only {w}×{h} pixels; the minimum is {min_side}×{min_side} (smaller images "
                             f"have too little detail to upscale; use bicubic resizing instead)")
        fmt = im.format
        if check_memory:
            ensure_fits_in_memory(h, w, tile=tile, overlap=overlap, name=str(p))
        try:
            im.load()
        except _DECODE_ERRORS as exc:
            raise ImageError(f"{p} is truncated or corrupt ({_one_line(exc)}); re-export or re-download it") from None
        orientation = _orientation(im)
        # An ICC profile still describes the output unless the colours are converted (CMYK, YCbCr, LAB … → RGB).
        icc = None if im.mode in ("CMYK", "YCbCr", "LAB", "HSV") else im.info.get("icc_profile")
        png16 = _read_png16_colour(p) if fmt == "PNG" else None
        if png16 is not None:
            arr, alpha, mode = png16
            arr = _orient_array(arr, orientation)
            alpha = None if alpha is None else _orient_array(alpha, orientation)
            gray, depth = mode == "LA;16", 16
        else:
            samples = _tiff_samples(im)  # before transposing: the transposed copy has no TIFF tags
            if orientation in _TRANSPOSE:
                # Not ImageOps.exif_transpose: it also re-encodes the EXIF block, which fails (struct.error,
                # TypeError) on tags whose stored type does not fit their value, in files whose pixels are fine.
                im = im.transpose(_TRANSPOSE[orientation])
            mode = im.mode
            arr, alpha, gray, depth = _pil_arrays(im, p, samples)
    return _loaded(arr, alpha, gray=gray, depth=depth, mode=mode, path=p, fmt=fmt,
                   icc=icc if isinstance(icc, bytes) else None)


def _check_readable(p: Path) -> None:
    if not p.exists():
        where = "" if p.is_absolute() else f" (relative to {Path.cwd()})"
        raise ImageError(f"input file not found: {p}{where}; check the path and the file name")
    if p.is_dir():
        raise ImageError(f"{p} is a folder, not an image file; give the path of one image")
    if not p.is_file():
        raise ImageError(f"{p} is not a regular file; give the path of an image file")
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        raise ImageError(f"cannot read {p}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise ImageError(f"cannot read {p}: {exc.strerror or exc}") from None


def _bomb_message(p: Path, exc: Exception) -> str:
    m = re.search(r"\((\d+) pixels\).*?limit of (\d+) pixels", str(exc))
    size = ""
    if m:
        size = f" ({int(m.group(1)) / 1e6:.0f} Mpx, over Pillow's safety limit of {int(m.group(2)) / 1e6:.0f} Mpx)"
    return (f"{p} is too large to open safely{size}; crop it into pieces (tile it) or downscale it first")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - unreadable EXIF means "no orientation"
        return 1


def _orient_array(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1–8) to an (H, W, …) array exactly as :func:`PIL.ImageOps.exif_transpose`."""
    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda x: x[:, ::-1],                           # FLIP_LEFT_RIGHT
        3: lambda x: x[::-1, ::-1],                        # ROTATE_180
        4: lambda x: x[::-1],                              # FLIP_TOP_BOTTOM
        5: lambda x: x.swapaxes(0, 1),                     # TRANSPOSE
        6: lambda x: np.rot90(x, -1),                      # ROTATE_270 (clockwise)
        7: lambda x: np.rot90(x, 2).swapaxes(0, 1),        # TRANSVERSE
        8: lambda x: np.rot90(x, 1),                       # ROTATE_90 (counter-clockwise)
    }
    op = ops.get(orientation)
    return a if op is None else np.ascontiguousarray(op(a))


def _color_key_alpha(arr: np.ndarray, key: object, maxval: int) -> np.ndarray | None:
    """Alpha (maxval where opaque, 0 where the pixel equals the ``tRNS`` colour key) or None without a key."""
    if key is None or isinstance(key, bytes):
        return None
    k = np.asarray(key, dtype=np.int64).reshape(-1)
    match = (arr == k[0]) if arr.ndim == 2 else np.all(arr == k[: arr.shape[-1]], axis=-1)
    return np.where(match, 0, maxval).astype(arr.dtype)


@dataclass(frozen=True)
class _TiffSamples:
    """How a one-sample-per-pixel TIFF stores its pixels (tags SampleFormat, BitsPerSample, PhotometricInterpretation);
    what Pillow's mode does not tell: whether integers are signed, and whether 0 is white."""

    sample_format: int  # 1 unsigned integer, 2 signed integer, 3 floating point
    bits: int
    min_is_white: bool

    def describe(self) -> str:
        kind = {1: "unsigned", 2: "signed"}.get(self.sample_format)
        return f"{kind} {self.bits}-bit integer" if kind else f"{self.bits}-bit"


def _tiff_samples(im: Image.Image) -> _TiffSamples | None:
    """The :class:`_TiffSamples` of a gray TIFF as Pillow read its tags (their defaults when absent), else None."""
    tags = getattr(im, "tag_v2", None)
    if tags is None or im.format != "TIFF":
        return None

    def first(tag: int, default: int) -> int:
        value = tags.get(tag, default)
        value = value[0] if isinstance(value, tuple) and value else value
        return int(value) if isinstance(value, int) else -1

    try:
        if first(277, 1) != 1:  # SamplesPerPixel: colour TIFFs are decoded by Pillow to 8-bit RGB(A) modes
            return None
        return _TiffSamples(first(339, 1), first(258, 1), first(262, 1) == 0)
    except (TypeError, ValueError, KeyError, struct.error):  # malformed tags: Pillow's own reading stands
        return None


def _pil_arrays(im: Image.Image, p: Path | None = None,
                samples: _TiffSamples | None = None) -> tuple[np.ndarray, np.ndarray | None, bool, int]:
    """(colour (H, W) gray or (H, W, 3), alpha (H, W) or None, grayscale, bit depth) from a decoded Pillow image.

    ``p`` names the file in errors; ``samples`` (:func:`_tiff_samples`) corrects what Pillow's TIFF modes hide
    (signed 8-bit and unsigned 32-bit samples, 16-bit min-is-white). Raises :class:`ImageError` for integer pixels
    outside 0..65535 (see the module docstring) and for float (``F``) pixels.
    """
    mode, key = im.mode, im.info.get("transparency")
    name = "the image" if p is None else str(p)
    if mode == "F":
        raise ImageError(f"{name} holds 32-bit floating-point pixels (mode F), which are not supported; "
                         f"convert it to an 8- or 16-bit image first")
    if mode == "1":
        im, mode = im.convert("L"), "L"
    if mode == "L":
        g = np.asarray(im)
        if samples is not None and samples.sample_format == 2 and samples.bits == 8:  # Pillow kept the raw bytes
            g = _in_range(g.view(np.int8), name, mode, samples).astype(np.uint8)
        return g, _color_key_alpha(g, key, 255), True, 8
    if mode in ("LA", "La"):
        la = np.asarray(im.convert("LA") if mode == "La" else im)
        return la[:, :, 0], la[:, :, 1], True, 8
    if mode == "I" or mode.startswith("I;"):
        g = np.asarray(im)
        if samples is not None and samples.sample_format == 1 and samples.bits == 32 and g.dtype.itemsize == 4:
            g = g.view(np.uint32)  # Pillow decodes unsigned 32-bit TIFF samples as signed (2**31 and up wrap)
        g = _in_range(g, name, mode, samples).astype(np.uint16)
        if samples is not None and samples.min_is_white and mode.startswith("I;16"):
            g = 65535 - g  # Pillow inverts 1- to 8-bit min-is-white TIFFs but leaves 16-bit ones as stored
        return g, _color_key_alpha(g, key, 65535), True, 16
    if mode in ("P", "PA"):
        if im.palette is None:  # a PNG without its PLTE chunk: Pillow fails an assert or gives black pixels
            raise ImageError(f"{name} is corrupt (a palette image without a palette); re-export or re-download it")
        has_alpha = mode == "PA" or bool(getattr(im, "has_transparency_data", key is not None))
        im = im.convert("RGBA" if has_alpha else "RGB")
        mode, key = im.mode, None
    elif mode not in ("RGB", "RGBA"):
        im = im.convert("RGBA" if mode in ("RGBa", "RGBA") else "RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, RGBa
        mode, key = im.mode, None
    a = np.asarray(im)
    if mode == "RGBA":
        return a[:, :, :3], a[:, :, 3], False, 8
    return a, _color_key_alpha(a, key, 255), False, 8


def _in_range(g: np.ndarray, name: str, mode: str, samples: _TiffSamples | None) -> np.ndarray:
    """``g`` (integer pixels) unchanged if all lie in 0..65535, else :class:`ImageError` naming the range found."""
    if g.dtype.kind not in "iu":
        raise ImageError(f"{name} holds {g.dtype} pixels (mode {mode}), which are not supported; convert it to an "
                         f"8- or 16-bit image first")
    lo, hi = (int(g.min()), int(g.max())) if g.size else (0, 0)
    if lo >= 0 and hi <= 65535:
        return g
    what = samples.describe() if samples is not None else f"{8 * g.dtype.itemsize}-bit integer"
    raise ImageError(f"{name} has {what} pixels from {lo} to {hi} (Pillow mode {mode}), but only values in 0..65535 "
                     f"can be read without loss; rescale it to 0..65535 (16-bit unsigned) or to 8 bits first")


def _loaded(arr: np.ndarray, alpha: np.ndarray | None, *, gray: bool, depth: int, mode: str, path: Path | None,
            fmt: str | None, icc: bytes | None) -> LoadedImage:
    half = 32767.5 if depth == 16 else 127.5
    maxval = 65535.0 if depth == 16 else 255.0
    c = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32))
    c = c[None] if c.ndim == 2 else c.permute(2, 0, 1)
    if c.shape[0] == 1:
        c = c.expand(3, -1, -1)
    rgb = (c / half - 1.0)[None].contiguous()
    a = None
    if alpha is not None:
        a = (torch.from_numpy(np.ascontiguousarray(alpha).astype(np.float32)) / maxval)[None, None].contiguous()
    return LoadedImage(rgb=rgb, alpha=a, mode=mode, bit_depth=depth, grayscale=gray, path=path, format=fmt,
                       icc_profile=icc)


# ------------------------------------------------------------------------------------------ 16-bit colour PNG (pypng)
#: PNG colour type → our mode name, for the 16-bit types Pillow reduces to 8 bits (gray+alpha, RGB, RGBA).
_PNG16_MODES = {4: "LA;16", 2: "RGB;16", 6: "RGBA;16"}
#: What pypng raises for a damaged file (FormatError/ChunkError are png.Error; rows are decoded lazily, so a short or
#: corrupt stream can also surface as a zlib, struct, index or value error while they are read).
_PNG_ERRORS = (png.Error, zlib.error, EOFError, struct.error, ValueError, IndexError)


def _read_png16_colour(p: Path) -> tuple[np.ndarray, np.ndarray | None, str] | None:
    """A 16-bit gray+alpha/RGB/RGBA PNG decoded by pypng: (uint16 colour (H, W) or (H, W, 3), alpha or None, mode),
    or None for any other PNG (Pillow decodes those exactly). An RGB colour key (``tRNS``) becomes the alpha.

    ``read()``, not ``asDirect()``: asDirect would shift the samples down to the depth an ``sBIT`` chunk names,
    and the colour key is expanded here by :func:`_color_key_alpha`, as for 8-bit images.
    """
    with open(p, "rb") as fh:
        head = fh.read(26)  # signature, IHDR length and type, width, height, then bit depth and colour type
        if len(head) < 26 or head[24] != 16 or head[25] not in _PNG16_MODES:
            return None  # another PNG: Pillow's decoding stands, whatever pypng would make of it
        fh.seek(0)
        try:
            w, h, rows, info = png.Reader(file=fh).read()
            samples = np.frombuffer(b"".join(rows), np.uint16)  # pypng's rows: array("H"), native byte order
        except _PNG_ERRORS as exc:
            raise ImageError(f"{p} is truncated or corrupt ({_one_line(exc)}); re-export or re-download it") from None
    planes = info["planes"]
    if samples.size != h * w * planes:  # pypng stops quietly where the compressed stream ends early
        raise ImageError(f"{p} is truncated or corrupt (image data is cut short); re-export or re-download it")
    arr, mode = samples.reshape(h, w, planes), _PNG16_MODES[head[25]]
    if planes == 3:
        return arr, _color_key_alpha(arr, info.get("transparent"), 65535), mode
    return arr[:, :, :-1] if planes == 4 else arr[:, :, 0], arr[:, :, -1], mode


def encode_png16(arr: np.ndarray, icc_profile: bytes | None = None) -> bytes:
    """A 16-bit PNG, written by pypng, from uint16 (H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA.

    pypng cannot write an ICC profile, so ``icc_profile`` is added as an ``iCCP`` chunk right after ``IHDR`` (the PNG
    specification wants it before the image data), with pypng's own chunk reader and writer.
    """
    if arr.dtype != np.uint16:
        raise ValueError(f"encode_png16 takes uint16 pixels, got {arr.dtype}")
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    rows = np.ascontiguousarray(arr, dtype=">u2").reshape(h, w * c)  # big-endian samples: PNG's packed rows
    buf = io.BytesIO()
    png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16).write_packed(buf, (r.tobytes() for r in rows))
    if not icc_profile:
        return buf.getvalue()
    chunks = list(png.Reader(bytes=buf.getvalue()).chunks())
    chunks.insert(1, (b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))  # name, NUL, method 0 (zlib)
    out = io.BytesIO()
    png.write_chunks(out, chunks)
    return out.getvalue()


# -------------------------------------------------------------------------------------------------------------- write
def output_format(path: str | os.PathLike[str]) -> str:
    """The Pillow format name for ``path``'s extension (``.png`` → ``PNG``), if Pillow can write it."""
    p = Path(path)
    suffix = p.suffix.lower()
    if not suffix:
        raise ImageError(f"{p} has no file extension, so the image format is unknown; end it in {SUGGESTED_SUFFIXES}")
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise ImageError(f"unknown image extension {suffix!r} in {p}; use {SUGGESTED_SUFFIXES}")
    if fmt not in Image.SAVE:
        raise ImageError(f"Pillow can read {suffix} files but cannot write them; use {SUGGESTED_SUFFIXES}")
    return fmt


def check_destination(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Check that a file can be created at ``path``: its folder exists and is writable, and it is not a folder."""
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{what} {p} is a folder; give a file name inside it, e.g. {p / ('out' + '.png')}")
    parent = p.parent
    if not parent.exists():
        raise ImageError(f"{what} folder {parent} does not exist; create it first (mkdir -p {parent}) "
                         f"or choose another path")
    if not parent.is_dir():
        raise ImageError(f"{what} path {p} is inside {parent}, which is not a folder")
    writable = os.access(parent, os.W_OK | os.X_OK)
    if writable:  # also catches read-only mounts and ACLs that os.access cannot see
        try:
            fd, probe = tempfile.mkstemp(prefix=".adasr-probe-", dir=parent)
            os.close(fd)
            os.unlink(probe)
        except OSError:
            writable = False
    if not writable:
        raise ImageError(f"{what} folder {parent} is not writable; choose another path or fix its permissions")
    return p


def check_output(path: str | os.PathLike[str], *, alpha: bool = False, grayscale: bool = False) -> str:
    """Validate an image destination before any model work; returns the Pillow format name.

    Checks :func:`check_destination`, :func:`output_format`, and that the format can hold the image (colour or
    gray, and transparency when ``alpha``).
    """
    p = check_destination(path)
    fmt = output_format(p)
    wanted = ("LA", "RGBA") if alpha else ("L", "RGB") if grayscale else ("RGB",)
    if not any(_format_supports(fmt, m) for m in wanted):
        what = "transparency (an alpha channel)" if alpha else "this kind of image"
        raise ImageError(f"{fmt} files cannot store {what}; write {p.with_suffix('.png').name} instead")
    return fmt


def _format_supports(fmt: str, mode: str) -> bool:
    try:
        Image.new(mode, (2, 2)).save(io.BytesIO(), format=fmt)
    except Exception:  # noqa: BLE001 - Pillow raises OSError, ValueError, KeyError… for unsupported modes
        return False
    return True


@dataclass(frozen=True)
class WrittenImage:
    """What :func:`write_image` stored: the path, Pillow format, mode (as :attr:`LoadedImage.output_mode`) and size."""

    path: Path
    format: str
    mode: str
    bit_depth: int
    width: int
    height: int


def write_image(path: str | os.PathLike[str], image: np.ndarray | Image.Image, *,
                icc_profile: bytes | None = None) -> WrittenImage:
    """Write ``image`` atomically (temporary file in the same folder, then :func:`os.replace`).

    ``image``: a Pillow image, or a uint8/uint16 array (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) as returned by
    :meth:`LoadedImage.to_array`. 16 bits are kept where the format allows (PNG always; 16-bit gray where Pillow can
    write ``I;16``), otherwise reduced to 8; gray becomes RGB (and LA becomes RGBA) where a format has no gray mode.
    The format comes from the extension. Raises :class:`ImageError` for a bad destination.
    """
    p = check_destination(path)
    fmt = output_format(p)
    # A 16-bit gray Pillow image takes the array path, which knows where 16 bits can be kept.
    arr = np.asarray(image) if isinstance(image, Image.Image) and image.mode.startswith("I;16") else image
    if isinstance(arr, Image.Image):
        pil = arr
        if not _format_supports(fmt, pil.mode):
            pil = _fallback_mode(pil, fmt)
        data = _encode_pil(pil, fmt, icc_profile)
        mode, depth = pil.mode, 16 if pil.mode.startswith("I;16") else 8
        w, h = pil.size
    else:
        arr = np.asarray(arr)
        channels_ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (2, 3, 4))
        if arr.dtype not in (np.uint8, np.uint16) or not channels_ok:
            raise ValueError(f"write_image takes uint8/uint16 (H, W[, 2|3|4]) arrays, got {arr.dtype} {arr.shape}")
        h, w = arr.shape[:2]
        channels = 1 if arr.ndim == 2 else arr.shape[2]
        if arr.dtype == np.uint16 and fmt == "PNG":
            data = encode_png16(arr, icc_profile)
            mode, depth = ("I;16", "LA;16", "RGB;16", "RGBA;16")[channels - 1], 16
        elif arr.dtype == np.uint16 and channels == 1 and _format_supports(fmt, "I;16"):
            pil = _array_to_pil(arr)
            data, mode, depth = _encode_pil(pil, fmt, icc_profile), "I;16", 16
        else:
            if arr.dtype == np.uint16:
                arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
            pil = _array_to_pil(arr)
            if not _format_supports(fmt, pil.mode):
                pil = _fallback_mode(pil, fmt)
            data, mode, depth = _encode_pil(pil, fmt, icc_profile), pil.mode, 8
    atomic_write(p, lambda fh: fh.write(data))
    return WrittenImage(path=p, format=fmt, mode=mode, bit_depth=depth, width=w, height=h)


def _array_to_pil(arr: np.ndarray) -> Image.Image:
    if arr.dtype == np.uint16:
        if arr.ndim == 2:
            return Image.fromarray(arr)  # mode I;16
        arr = ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    mode = "L" if arr.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode) if mode == "LA" else Image.fromarray(arr)


def _fallback_mode(pil: Image.Image, fmt: str) -> Image.Image:
    """Convert to the nearest mode ``fmt`` can store (I;16 → L, L → RGB, LA → RGBA; alpha is never dropped)."""
    chain = {"I;16": ("L", "RGB"), "L": ("RGB",), "LA": ("RGBA",), "1": ("L", "RGB"), "P": ("RGB",)}.get(pil.mode, ())
    for mode in chain:
        if _format_supports(fmt, mode):
            if pil.mode == "I;16":
                a = ((np.asarray(pil).astype(np.uint32) + 128) // 257).astype(np.uint8)
                return Image.fromarray(a).convert(mode)
            return pil.convert(mode)
    what = "transparency (an alpha channel)" if "A" in pil.mode else f"{pil.mode} images"
    raise ImageError(f"{fmt} files cannot store {what}; write a .png file instead")


def _encode_pil(pil: Image.Image, fmt: str, icc_profile: bytes | None) -> bytes:
    kwargs = dict(_SAVE_OPTIONS.get(fmt, {}))
    if icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = icc_profile
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Create ``path`` atomically: ``write(fh)`` fills a temporary file in the same folder, which then replaces
    ``path`` with :func:`os.replace`. On any error or interrupt the temporary file is removed and ``path`` is left
    as it was. The new file gets the usual permissions (the existing file's, else 0666 minus the umask). An OSError
    that names no file (a full disk: ENOSPC from ``write``/``fsync``) is raised again naming ``path``."""
    p = Path(path)
    mode = _new_file_mode(p)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.filename is None:  # a failed write() or fsync() (ENOSPC, EIO, EDQUOT) names no file: name ``path``
            raise OSError(exc.errno, exc.strerror or str(exc), str(p)) from exc
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def _new_file_mode(p: Path) -> int:
    with contextlib.suppress(OSError):
        return p.stat().st_mode & 0o777
    umask = 0o022
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    return 0o666 & ~umask


__all__ = [
    "ImageError", "LoadedImage", "WrittenImage", "MIN_SIDE", "read_image", "write_image", "check_output",
    "check_destination", "output_format", "ensure_fits_in_memory", "available_memory_bytes", "estimate_upscale_bytes",
    "atomic_write", "encode_png16",
]
