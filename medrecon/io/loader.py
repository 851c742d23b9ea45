"""Public loading API: one entry point for DICOM (folder, zip, files), NIfTI and NRRD.

>>> vol = load("ct_folder")                 # the only series, or SeriesSelectionError
>>> vol = load("study.zip", series=3)       # SeriesNumber 3 (refused if there is none)
>>> vol = load("study.zip", series="#2")    # the index shown by `medrecon info`
>>> for s in load_series("study/"): print(s.index, s.description, s.warnings)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medrecon.errors import DicomError, InputError, SeriesSelectionError
from medrecon.io.volumes import read_volume as _read_file
from medrecon.io.volumes import volume_suffix as _suffix
from medrecon.volume import Volume
from medrecon.progress import ProgressFn

__all__ = ["load", "load_series", "describe_series", "SeriesInfo", "is_volume_file", "convert"]


def _guarded(fn):
    """Public entry points raise only :class:`MedreconError` (one line naming the input), whatever
    a parser or codec underneath raised (see :func:`medrecon.io.limits.guard`)."""
    import functools

    @functools.wraps(fn)
    def wrapper(path, *args, **kwargs):
        from medrecon.io.limits import guard

        where = path if not isinstance(path, (list, tuple)) else f"{len(path)} given files"
        with guard(where, "cannot read input", error=InputError):
            return fn(path, *args, **kwargs)

    return wrapper

def is_volume_file(path) -> bool:
    """True for a single NIfTI / NRRD / MetaImage file (not DICOM)."""
    if isinstance(path, (list, tuple)):
        return False
    return _suffix(path) != "" and Path(path).is_file()


@dataclass
class SeriesInfo:
    """One series found at a path: its description, warnings, and the volume (loaded lazily)."""

    index: int
    description: dict[str, Any]
    warnings: list[str]
    is_volume: bool
    _loader: Callable[..., Volume] = field(repr=False)
    _volume: Volume | None = field(default=None, repr=False)

    @property
    def series_number(self):
        return self.description.get("series_number")

    @property
    def volume(self) -> Volume:
        """The volume with default corrections (decoded on first access)."""
        if self._volume is None:
            self._volume = self._loader()
        return self._volume

    def load(self, **kwargs) -> Volume:
        """Decode with explicit options (``correct_tilt``, ``resample_gaps``, ``workers``)."""
        return self._loader(**kwargs)


def _file_series(path) -> list[SeriesInfo]:
    ext = _suffix(path)

    def loader(**_kw) -> Volume:
        return _read_file(path)

    vol = _read_file(path)
    desc = {
        "index": 1, "series_number": None, "modality": vol.meta.get("modality", ""),
        "description": Path(path).name, "kind": "4D" if vol.array.ndim == 4 else "3D",
        "size": list(vol.shape), "spacing": [round(float(s), 6) for s in vol.spacing],
        "orientation": vol.meta.get("orientation", ""), "n_files": 1, "n_frames": vol.shape[2] if vol.array.ndim >= 3 else 1,
        "transfer_syntax": ext.lstrip("."), "tilt_deg": 0.0, "is_volume": True, "reason": "",
        "warnings": list(vol.meta.get("warnings", [])),
    }
    return [SeriesInfo(1, desc, desc["warnings"], True, loader, vol)]


def _dicom_series(path, progress=None):
    from medrecon.io.dicom import load_dicom_series, scan_series

    series, res = scan_series(path, progress=progress)
    out = []
    for s in series:
        def loader(_s=s, correct_tilt: bool = True, resample_gaps: bool = True, workers=None, progress=None,
                   philips_scaling: str = "precise", allow_index_grid: bool = False):
            return load_dicom_series(_s, correct_tilt=correct_tilt, resample_gaps=resample_gaps,
                                     workers=workers, progress=progress, philips_scaling=philips_scaling,
                                     allow_index_grid=allow_index_grid)

        d = s.describe()
        out.append(SeriesInfo(s.index, d, d["warnings"], s.is_volume, loader))
    return out, series, res


def _object_rows(res) -> list[dict]:
    """``info`` rows for the non-image DICOM objects and unreadable files (one per kind and
    series), after the image series."""
    groups: dict[tuple, list] = {}
    for o in res.objects:
        groups.setdefault((o.kind, o.series_number, o.modality), []).append(o)
    rows = []
    for (kind, sn, mod), objs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        reason = (f"non-image object ({kind}): skipped" if kind != "unreadable file"
                  else f"unreadable file: {objs[0].reason}; skipped")
        rows.append({"index": "-", "series_number": sn, "modality": mod, "description": kind,
                     "kind": "non-image", "size": [], "spacing": [], "orientation": "",
                     "n_files": len(objs), "n_frames": 0, "is_volume": False, "reason": reason,
                     "warnings": [], "sop_class": objs[0].sop_class})
    return rows


@_guarded
def load_series(path, **_kwargs) -> list[SeriesInfo]:
    """Every series at ``path`` with its description and warnings; volumes decode lazily.

    ``path`` is a DICOM folder (recursive), a zip file, a DICOM file, a list of files, or a
    NIfTI / NRRD / MetaImage file (one entry).

    Examples
    --------
    >>> import tempfile
    >>> from medrecon.io.dicom.write import write_dicom_series
    >>> from medrecon.phantoms import sphere_phantom
    >>> folder = tempfile.mkdtemp()
    >>> files = write_dicom_series(sphere_phantom(radius=5.0).volume, folder, series_number=7)
    >>> [(s.series_number, s.is_volume, s.volume.shape == sphere_phantom(radius=5.0).volume.shape)
    ...  for s in load_series(folder)]
    [(7, True, True)]
    """
    if is_volume_file(path):
        return _file_series(path)
    return _dicom_series(path)[0]


@_guarded
def describe_series(path) -> list[dict]:
    """JSON-friendly description of every series at ``path`` (for ``medrecon info``), followed by
    one row per kind of non-image DICOM object or unreadable file found there (``kind``:
    ``"non-image"``; skipped when loading)."""
    if is_volume_file(path):
        return [s.description for s in _file_series(path)]
    infos, _, res = _dicom_series(path)
    return [s.description for s in infos] + _object_rows(res)


def _pick(series, choice, where) -> Any:
    """Pick one series: a DICOM SeriesNumber if one matches, else the index shown by ``info``
    (only when no series has a SeriesNumber); ``"#3"`` always means the index. Every refusal says
    which names exist here: the indexes ``#1..#N`` and the SeriesNumbers."""
    listing = "; ".join(s.label() for s in series)
    indexes = f"#1..#{len(series)}" if len(series) > 1 else "#1"
    numbered = sorted({s.series_number for s in series if s.series_number is not None})
    numbers = (f"SeriesNumbers here: {', '.join(str(n) for n in numbered)}" if numbered
               else "no series here has a SeriesNumber")
    text = str(choice).strip()
    force_index = text.startswith("#")
    try:
        num = int(text.lstrip("#"))
    except ValueError:
        matches = [s for s in series if s.description == text or s.uid_hash == text]
        if len(matches) == 1:
            return matches[0]
        raise SeriesSelectionError(f"no series '{text}' (indexes {indexes}; {numbers}); found: {listing}",
                                   where) from None
    by_index = [s for s in series if s.index == num]
    if force_index:
        if by_index:
            return by_index[0]
        raise SeriesSelectionError(f"no series #{num}: `medrecon info` lists {indexes} ({numbers}); found: {listing}",
                                   where)
    by_number = [s for s in series if s.series_number == num]
    by_number_vol = [s for s in by_number if s.is_volume]
    if by_number:  # a SeriesNumber match wins; '#N' reaches the index
        if len(by_number) == 1:
            return by_number[0]
        if len(by_number_vol) == 1:
            return by_number_vol[0]
        raise SeriesSelectionError(
            f"SeriesNumber {num} holds {len(by_number)} series (echoes/image types/orientations); "
            f"choose one by index with '#N': {'; '.join(s.label() for s in by_number)}", where)
    if by_index and not numbered:  # no SeriesNumbers at all: the index is the only name
        return by_index[0]
    if by_index:  # never silently: a number the user typed is a SeriesNumber unless written '#N'
        raise SeriesSelectionError(
            f"no SeriesNumber {num} ({numbers}); --series '#{num}' selects the series listed as #{num} by "
            "`medrecon info`", where)
    raise SeriesSelectionError(f"no SeriesNumber {num} and no index #{num} ({numbers}; indexes {indexes}); "
                               f"found: {listing}", where)


@_guarded
def load(path, series=None, correct_tilt: bool = True, resample_gaps: bool = True,
         workers: int | None = None, progress: ProgressFn | None = None,
         philips_scaling: str = "precise", allow_index_grid: bool = False) -> Volume:
    """Load one volume (index -> LPS mm affine) from DICOM, NIfTI or NRRD.

    Parameters
    ----------
    path : str, Path or list of them
        DICOM folder (searched recursively), zip file, DICOM file(s), or one NIfTI/NRRD file.
    series : int or str, optional
        Which series when the path holds several: the DICOM SeriesNumber (refused with a
        hint when no series has it), or ``"#3"`` for index 3 as shown by ``medrecon info`` (a
        plain number is taken as the index only when no series has a SeriesNumber).
    correct_tilt : bool
        Resample a gantry-tilted (sheared) series onto an orthogonal grid (default). With
        ``False`` the voxels are kept as acquired and the affine is sheared.
    resample_gaps : bool
        Resample uneven slice spacing / missing slices onto equal spacing (default, with a
        warning in ``meta['warnings']``). With ``False`` slices are stacked as they are and
        the affine uses the mean spacing (warned as approximate).
    workers : int, optional
        Processes for parallel decoding of compressed data (default: all cores).
    progress : ``progress(ProgressEvent)`` (:mod:`medrecon.progress`), optional
        Called as frames are decoded.
    philips_scaling : {"precise", "display"}
        Philips images: precise floating-point values (default, as dcm2niix ``-p y``) or the
        display values (``-p n``).
    allow_index_grid : bool
        Load a series without any patient geometry on a 1 mm index grid (warned) instead of
        refusing it.

    Raises
    ------
    InputError, DicomError, SeriesSelectionError
        Each with a one-line message naming the file and the problem.

    Examples
    --------
    >>> import os, tempfile
    >>> from medrecon.io.volumes import save_volume
    >>> from medrecon.phantoms import sphere_phantom
    >>> src = sphere_phantom(radius=5.0, spacing=(0.5, 0.5, 1.0)).volume
    >>> vol = load(save_volume(src, os.path.join(tempfile.mkdtemp(), "ct.nrrd")))
    >>> vol.spacing.tolist(), bool((abs(vol.affine - src.affine) < 1e-4).all())
    ([0.5, 0.5, 1.0], True)
    """
    if is_volume_file(path):
        return _read_file(path)
    chosen = _choose_dicom(path, series, allow_index_grid)
    from medrecon.io.dicom import load_dicom_series

    return load_dicom_series(chosen, correct_tilt=correct_tilt, resample_gaps=resample_gaps,
                             workers=workers, progress=progress, philips_scaling=philips_scaling,
                             allow_index_grid=allow_index_grid)


def _choose_dicom(path, series=None, allow_index_grid: bool = False):
    """The DicomSeries that ``load(path, series)`` would decode."""
    if isinstance(path, (str, os.PathLike)) and not Path(path).exists():
        raise InputError("no such file or folder", path)
    from medrecon.io.dicom import scan_series

    found, _ = scan_series(path)
    if allow_index_grid:
        for s in found:
            if s.index_grid:
                s.is_volume = True
    where = path if not isinstance(path, (list, tuple)) else f"{len(path)} given files"
    if series is None:
        volumes = [s for s in found if s.is_volume]
        if len(found) == 1:
            chosen = found[0]
        elif len(volumes) == 1 and all(not s.is_volume for s in found if s is not volumes[0]):
            chosen = volumes[0]
        elif not volumes:
            reasons: dict[str, list[str]] = {}
            for s in found:
                reasons.setdefault(s.reason, [])
                sn = str(s.series_number if s.series_number is not None else f"#{s.index}")
                if sn not in reasons[s.reason]:
                    reasons[s.reason].append(sn)
            why = "; ".join(f"series {', '.join(v)}: {k}" for k, v in reasons.items())
            raise DicomError(f"no loadable volume among {len(found)} series ({why}); "
                             "`medrecon info` lists them", where)
        else:
            listing = "; ".join(s.label() for s in volumes)  # only those that can be chosen
            raise SeriesSelectionError(f"{len(volumes)} volumes among {len(found)} series, choose one with "
                                       f"--series N (SeriesNumber, or '#N' for the index): {listing}", where)
    else:
        chosen = _pick(found, series, where)
    return chosen


@_guarded
def convert(path, output, series=None, sidecar: bool = True, correct_tilt: bool = True,
            resample_gaps: bool = True, workers: int | None = None,
            progress: ProgressFn | None = None, philips_scaling: str = "precise",
            allow_index_grid: bool = False) -> tuple[Volume, Path, Path | None]:
    """Load one series and write it (format from the extension of ``output``), with a BIDS JSON
    sidecar beside it for DICOM input (``x.nii.gz`` -> ``x.json``, like ``dcm2niix -b y``) and,
    for a diffusion series written as NIfTI, FSL ``x.bval`` / ``x.bvec``.

    Returns ``(volume, image_path, sidecar_path or None)``. Options as :func:`load`.
    """
    from medrecon.io.limits import refuse_overwrite
    from medrecon.io.volumes import save_volume

    refuse_overwrite(output, path if isinstance(path, (list, tuple)) else [path])
    if is_volume_file(path):
        vol = _read_file(path)
        return vol, save_volume(vol, output), None
    from medrecon.io.dicom import load_dicom_series

    chosen = _choose_dicom(path, series, allow_index_grid)
    vol = load_dicom_series(chosen, correct_tilt=correct_tilt, resample_gaps=resample_gaps, workers=workers,
                            progress=progress, philips_scaling=philips_scaling, allow_index_grid=allow_index_grid)
    out = save_volume(vol, output)
    js = None
    if sidecar:
        from medrecon.io.dicom.sidecar import sidecar_for_series, write_sidecar

        js = write_sidecar(out, sidecar_for_series(chosen, philips_scaling=philips_scaling))
    if str(out).lower().endswith((".nii", ".nii.gz")):
        from medrecon.io.dicom.diffusion import gradient_table, write_fsl_gradients

        table = gradient_table(chosen)
        if table is not None:  # bval/bvec beside the NIfTI, as dcm2niix
            write_fsl_gradients(out, vol.affine, *table)
    return vol, Path(out), js
