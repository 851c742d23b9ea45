"""Mutation fuzzing of medrecon's readers: seeds (real files from ../shared/data, plus NIfTI,
NRRD, zip and .gz wrappers), structure-aware mutations, and a contained runner.

Every mutant is written to a fresh folder and loaded in a *forked child* with an address-space
limit, a wall-clock alarm and an audit hook that records every file opened. The promise checked
by :func:`check` for each outcome:

* only :class:`medrecon.errors.MedreconError` (one line, naming the file) or success;
* no hang (the child is killed after ``timeout`` seconds), no crash (no death by a signal);
* bounded memory (``RLIMIT_AS``; an allocation beyond it would surface as a failure);
* nothing outside the input folder read (libraries and Python's own files aside);
* the input is never modified (SHA-256 before and after).

Used by ``tests/reliability/test_reliability_fuzz.py`` (a short, derandomised run) and by
``benchmarks/fuzz_long.py`` (the long run whose figures are in ``docs/reliability.md``).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import resource
import select
import shutil
import signal
import struct
import sys
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

#: seed files: (label, path) of small real DICOM files covering every transfer syntax here
DICOM_SEEDS = [
    "dicom_transfer_syntaxes_dcm_qa_ts/dicom/1.dcm", "dicom_transfer_syntaxes_dcm_qa_ts/dicom/2.dcm",
    "dicom_transfer_syntaxes_dcm_qa_ts/dicom/3.dcm", "dicom_transfer_syntaxes_dcm_qa_ts/dicom/4.dcm",
    "dicom_transfer_syntaxes_dcm_qa_ts/dicom/5.dcm", "dicom_transfer_syntaxes_dcm_qa_ts/dicom/6.dcm",
    "dicom_transfer_syntaxes_dcm_qa_ts/dicom/7.dcm", "dicom_transfer_syntaxes_dcm_qa_ts/dicom/8.dcm",
    "dicom_transfer_syntaxes_dcm_qa_ts/dicom/9.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/CT_small.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small_RLE.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small_bigendian.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small_implicit.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small_jp2klossless.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small_jpeg_ls_lossless.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/JPGExtended.dcm",
    "dicom_small_singles_pydicom/from_pydicom_test_files/no_meta.dcm",
    "dicom_small_singles_pydicom/from_pydicom_data/emri_small.dcm",
    "dicom_small_singles_pydicom/from_pydicom_data/emri_small_RLE.dcm",
    "dicom_small_singles_pydicom/from_pydicom_data/emri_small_jpeg_2k_lossless.dcm",
    "dicom_small_singles_pydicom/from_pydicom_data/emri_small_jpeg_ls_lossless.dcm",
    "dicom_12bit_stored_dcm_qa_12bit/dicom/12bitSigned_0x0F0F.dcm",
]
NIFTI_SEEDS = ["dicom_transfer_syntaxes_dcm_qa_ts/ref_upstream/1.nii.gz"]

TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5", "1.2.3.4.5.6.7",
]
#: dataset-level attribute lies: keyword -> candidate values
ATTRIBUTE_LIES = {
    "ImagePositionPatient": ["nan\\nan\\nan", "inf\\0\\0", "abc\\def\\ghi", "1", "1e308\\1e308\\1e308"],
    "ImageOrientationPatient": ["0\\0\\0\\0\\0\\0", "1\\0\\0\\1\\0\\0", "nan\\0\\0\\0\\1\\0", "1\\0\\0", "x\\y\\z\\a\\b\\c"],
    "PixelSpacing": ["0\\0", "-1\\-1", "nan\\1", "1", "inf\\inf", "abc"],
    "SliceThickness": ["nan", "-5", "abc"],
    "SpacingBetweenSlices": ["nan", "0", "inf"],
    "NumberOfFrames": ["1000000", "0", "-3", "abc", "2\\3", "99999999999"],
    "Rows": [0, 65535, 1, 7], "Columns": [0, 65535, 3],
    "BitsAllocated": [0, 1, 7, 12, 64, 255], "BitsStored": [0, 17, 64], "HighBit": [0, 40, 65535],
    "SamplesPerPixel": [0, 3, 4, 200], "PixelRepresentation": [2, 65535],
    "PhotometricInterpretation": ["PALETTE COLOR", "YBR_FULL", "RGB", "YBR_FULL_422", "", "GARBAGE"],
    "RescaleSlope": ["0", "nan", "inf", "-0", "abc"], "RescaleIntercept": ["nan", "1e40", "abc"],
    "PlanarConfiguration": [1, 7],
}
MUTATIONS = ["bitflip", "truncate", "attribute", "transfer_syntax", "nested_sequence", "bad_vr",
             "odd_length", "vm_lie", "pixel_bytes", "length_field", "gzip_wrap", "zip_wrap", "insert_junk"]


# --------------------------------------------------------------------------------------------
# mutations
# --------------------------------------------------------------------------------------------
def _elements(data: bytes):
    """Top-level elements of a DICOM file: (tag, VR, value offset, value length, header offset)."""
    import pydicom
    from pydicom.dataelem import RawDataElement

    out = []
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, defer_size=None)
    except Exception:  # noqa: BLE001
        return out, None
    for tag in list(ds._dict.keys()):
        el = ds._dict[tag]
        if isinstance(el, RawDataElement) and el.value_tell is not None:
            out.append((int(tag), el.VR, int(el.value_tell), int(el.length), ds))
    return out, ds


def _explicit_header_offset(data: bytes, value_tell: int) -> tuple[int, int] | None:
    """(offset of the 2-byte VR, offset of the length field) of an explicit-VR element."""
    for hdr, lenoff in ((8, 6), (12, 8)):
        start = value_tell - hdr
        if start >= 0 and data[start + 4:start + 6].isalpha():
            return start + 4, start + lenoff
    return None


def _with_transfer_syntax(data: bytes, ts: str) -> bytes:
    """The same dataset bytes under another file meta TransferSyntaxUID (no re-encoding)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.filewriter import write_file_meta_info
    from pydicom.filebase import DicomBytesIO

    fp = io.BytesIO(data)
    read_preamble(fp, True)
    fm = _read_file_meta_info(fp)
    rest = data[fp.tell():]
    new = FileMetaDataset(fm)
    new.TransferSyntaxUID = ts
    out = DicomBytesIO()
    write_file_meta_info(out, new, enforce_standard=False)
    return data[:132] + out.getvalue() + rest


def _nested_sequence(depth: int) -> bytes:
    """An explicit-VR little-endian SQ element nested ``depth`` levels (undefined lengths)."""
    sq_open = struct.pack("<HH", 0x0008, 0x1115) + b"SQ\0\0" + b"\xff\xff\xff\xff"
    item_open = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_close = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    sq_close = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return (sq_open + item_open) * depth + (item_close + sq_close) * depth


_BOMBS: dict = {}


def _bomb(kind: str, head: bytes) -> bytes:
    """96 MB of zeros after a DICOM preamble: gzip-compressed (``gz``) or raw for a zip member
    (made once per process)."""
    key = (kind, head)
    if key not in _BOMBS:
        raw = head + bytes(96 << 20)
        _BOMBS[key] = gzip.compress(raw, compresslevel=6) if kind == "gz" else raw
        if kind == "raw":
            _BOMBS.clear()
            return raw
    return _BOMBS[key]


def mutate(data: bytes, kind: str, rnd: random.Random, name: str = "x.dcm") -> tuple[bytes, str, str]:
    """One mutant of ``data``. Returns ``(bytes, file name, description)``."""
    b = bytearray(data)
    n = len(b)
    if kind == "bitflip":
        k = rnd.randint(1, 16)
        for _ in range(k):
            i = rnd.randrange(n)
            b[i] ^= 1 << rnd.randrange(8)
        return bytes(b), name, f"bitflip x{k}"
    if kind == "truncate":
        cut = rnd.randrange(0, n)
        return bytes(b[:cut]), name, f"truncate at {cut}/{n}"
    if kind == "insert_junk":
        i = rnd.randrange(n)
        junk = bytes(rnd.randrange(256) for _ in range(rnd.choice([1, 2, 3, 4, 8, 64])))
        return bytes(b[:i]) + junk + bytes(b[i:]), name, f"insert {len(junk)} bytes at {i}"
    if kind == "gzip_wrap":
        gz = gzip.compress(data, compresslevel=1)
        how = rnd.choice(["plain", "truncated", "corrupt", "bomb"])
        if how == "truncated":
            gz = gz[: rnd.randrange(10, max(11, len(gz)))]
        elif how == "corrupt":
            g = bytearray(gz)
            for _ in range(8):
                i = rnd.randrange(10, len(g))
                g[i] ^= 0xFF
            gz = bytes(g)
        elif how == "bomb":
            gz = _bomb("gz", data[:132])
        return gz, name + ".gz", f"gzip {how}"
    if kind == "zip_wrap":
        bio = io.BytesIO()
        how = rnd.choice(["plain", "bomb", "corrupt"])
        with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as zf:
            if how == "bomb":
                zf.writestr("bomb.dcm", _bomb("raw", data[:132]))
            else:
                zf.writestr("a.dcm", data)
        z = bio.getvalue()
        if how == "corrupt":
            zz = bytearray(z)
            for _ in range(16):
                i = rnd.randrange(30, max(31, len(zz) - 30))
                zz[i] ^= 0x5A
            z = bytes(zz)
        return z, "mutant.zip", f"zip {how}"
    if kind == "transfer_syntax":
        ts = rnd.choice(TRANSFER_SYNTAXES)
        try:
            return _with_transfer_syntax(data, ts), name, f"transfer syntax -> {ts}"
        except Exception:  # noqa: BLE001 - no file meta to rewrite
            return bytes(b), name, "transfer syntax (no meta: unchanged)"
    if kind == "nested_sequence":
        depth = rnd.choice([50, 200, 500, 2000])
        els, _ = _elements(data)
        first = min((e[2] for e in els if e[0] >> 16 >= 0x0008), default=None)
        if first is None or _explicit_header_offset(data, first) is None:
            return bytes(b), name, "nested sequence (not explicit VR: unchanged)"
        vr_off, _ = _explicit_header_offset(data, first)
        at = vr_off - 4
        return bytes(b[:at]) + _nested_sequence(depth) + bytes(b[at:]), name, f"nested sequence depth {depth}"
    els, ds = _elements(data)
    if not els:
        return bytes(b), name, f"{kind} (unparsable seed: unchanged)"
    if kind == "pixel_bytes":
        px = [e for e in els if e[0] == 0x7FE00010]
        if not px:
            return bytes(b), name, "pixel bytes (none)"
        start = px[0][2]
        end = n if px[0][3] == 0xFFFFFFFF else min(n, start + px[0][3])
        k = rnd.randint(1, 64)
        for _ in range(k):
            i = rnd.randrange(start, max(start + 1, end))
            if i < n:
                b[i] = rnd.randrange(256)
        return bytes(b), name, f"pixel bytes x{k}"
    if kind == "attribute":
        import pydicom

        key = rnd.choice(sorted(ATTRIBUTE_LIES))
        val = rnd.choice(ATTRIBUTE_LIES[key])
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            from pydicom.datadict import dictionary_VR, tag_for_keyword

            tag = tag_for_keyword(key)
            vr = dictionary_VR(tag)
            if isinstance(val, str) and vr in ("US", "SS", "UL", "DS", "IS"):
                vr = "LO"  # text where a number belongs, written whatever it says
            ds.add_new(tag, vr, val)
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=False)
            return out.getvalue(), name, f"{key} = {val!r}"
        except Exception as exc:  # noqa: BLE001
            return bytes(b), name, f"{key} (not writable: {type(exc).__name__})"
    explicit = [e for e in els if _explicit_header_offset(data, e[2]) is not None and e[0] != 0x7FE00010]
    if not explicit:
        return bytes(b), name, f"{kind} (implicit VR: unchanged)"
    tag, vr, vt, length, _ = rnd.choice(explicit)
    vr_off, len_off = _explicit_header_offset(data, vt)
    long_len = len_off - vr_off == 4
    if kind == "bad_vr":
        new = rnd.choice([b"ZZ", b"XX", b"QQ", b"\0\0", b"SQ", b"UN", b"OB"])
        b[vr_off:vr_off + 2] = new
        return bytes(b), name, f"VR of ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} -> {new!r}"
    if kind in ("odd_length", "length_field", "vm_lie"):
        numeric = [e for e in explicit if e[1] in ("US", "SS", "UL", "SL", "FL", "FD")]
        if kind != "length_field" and numeric:
            tag, vr, vt, length, _ = rnd.choice(numeric)
            vr_off, len_off = _explicit_header_offset(data, vt)
            long_len = len_off - vr_off == 4
        if kind == "odd_length":
            newlen = max(1, length - 1) if length % 2 == 0 else length
            newlen = newlen | 1
        elif kind == "vm_lie":
            newlen = length * 2 if length else 4
        else:
            newlen = rnd.choice([0, 1, 3, 0xFFFF, 0xFFFFFFFF, n, length + 2, length * 100 + 7])
        if long_len:
            b[len_off:len_off + 4] = struct.pack("<I", newlen & 0xFFFFFFFF)
        else:
            b[len_off:len_off + 2] = struct.pack("<H", newlen & 0xFFFF)
        return bytes(b), name, f"{kind}: length of ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} {length} -> {newlen}"
    return bytes(b), name, f"{kind} (unknown)"


def mutate_nifti(data: bytes, rnd: random.Random) -> tuple[bytes, str, str]:
    """NIfTI mutants: header field lies (dims, datatype, sform/qform, pixdim, vox_offset) in a
    re-gzipped file, or byte-level damage."""
    raw = gzip.decompress(data)
    b = bytearray(raw)
    kind = rnd.choice(["dims", "dims", "sform", "pixdim", "datatype", "vox_offset", "bitflip", "truncate", "bomb"])
    if kind == "dims":
        dims = [rnd.choice([1, 2, 3, 4, 7, 2048, 32767, 65535 // 2]) for _ in range(3)]
        struct.pack_into("<8h", b, 40, 3, *dims, 1, 1, 1, 1)
        desc = f"dims {dims}"
    elif kind == "sform":
        vals = rnd.choice([[float("nan")] * 4, [float("inf"), 0, 0, 0], [0.0, 0, 0, 0]])
        struct.pack_into("<h", b, 254, 1)  # sform_code
        for row, off in enumerate((280, 296, 312)):
            struct.pack_into("<4f", b, off, *vals)
        desc = f"sform rows {vals}"
    elif kind == "pixdim":
        v = rnd.choice([0.0, float("nan"), float("inf"), -1.0])
        struct.pack_into("<3f", b, 80, v, v, v)
        struct.pack_into("<hh", b, 252, 0, 0)  # no qform, no sform: pixdim is the geometry
        desc = f"pixdim {v}"
    elif kind == "datatype":
        dt = rnd.choice([0, 1, 3, 128, 1792, 2304, 255, 32767])
        struct.pack_into("<h", b, 70, dt)
        desc = f"datatype {dt}"
    elif kind == "vox_offset":
        v = rnd.choice([0.0, 1e9, -352.0, float("nan")])
        struct.pack_into("<f", b, 108, v)
        desc = f"vox_offset {v}"
    elif kind == "bitflip":
        for _ in range(8):
            i = rnd.randrange(min(len(b), 348))
            b[i] ^= 1 << rnd.randrange(8)
        desc = "header bitflips"
    elif kind == "bomb":
        struct.pack_into("<8h", b, 40, 3, 2048, 2048, 512, 1, 1, 1, 1)
        return gzip.compress(bytes(b[:352]) + b"\0" * (64 << 20), 9), "mutant.nii.gz", "header claims 2048^2x512, 64 MB of data"
    else:
        cut = rnd.randrange(0, len(b))
        return gzip.compress(bytes(b[:cut]), 1), "mutant.nii.gz", f"truncate at {cut}"
    return gzip.compress(bytes(b), 1), "mutant.nii.gz", desc


def nrrd_seed(folder: Path) -> bytes:
    """A small attached NRRD (raw) file's bytes."""
    hdr = ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 5 6\n"
           "space directions: (1,0,0) (0,1,0) (0,0,2)\nkinds: domain domain domain\nendian: little\n"
           "encoding: raw\nspace origin: (0,0,0)\n\n")
    return hdr.encode() + np.arange(120, dtype="<i2").tobytes()


def mutate_nrrd(data: bytes, rnd: random.Random) -> tuple[bytes, str, str]:
    text, _, payload = data.partition(b"\n\n")
    lines = text.decode().split("\n")
    kind = rnd.choice(["dirs", "dirs", "sizes", "datafile", "datafile", "type", "encoding", "truncate"])
    if kind == "dirs":
        v = rnd.choice(["(nan,0,0) (0,1,0) (0,0,2)", "(0,0,0) (0,1,0) (0,0,2)", "(1,0,0) (1,0,0) (0,0,2)",
                        "(inf,0,0) (0,1,0) (0,0,1)", "(1,0) (0,1,0) (0,0,2)", "none (0,1,0) (0,0,2)"])
        lines = [("space directions: " + v) if ln.startswith("space directions") else ln for ln in lines]
        desc = f"space directions {v}"
    elif kind == "sizes":
        v = rnd.choice(["4 5 6000000", "0 5 6", "-4 5 6", "100000 100000 100000", "4 5"])
        lines = [("sizes: " + v) if ln.startswith("sizes") else ln for ln in lines]
        desc = f"sizes {v}"
    elif kind == "datafile":
        v = rnd.choice(["/etc/passwd", "../../../../etc/passwd", "../outside.raw", "/proc/self/environ",
                        "LIST", "data%d.raw 1 3 1"])
        lines = [ln for ln in lines if not ln.startswith("encoding")] + ["encoding: raw", f"data file: {v}"]
        return ("\n".join(lines) + "\n\n").encode(), "mutant.nhdr", f"data file {v}"
    elif kind == "type":
        v = rnd.choice(["quaternion", "double", "block", "int64"])
        lines = [("type: " + v) if ln.startswith("type") else ln for ln in lines]
        desc = f"type {v}"
    elif kind == "encoding":
        v = rnd.choice(["gzip", "bzip2", "hex", "txt", "zstd"])
        lines = [("encoding: " + v) if ln.startswith("encoding") else ln for ln in lines]
        desc = f"encoding {v} (payload raw)"
    else:
        cut = rnd.randrange(0, len(payload) + 1)
        payload = payload[:cut]
        desc = f"payload truncated to {cut}"
    return ("\n".join(lines) + "\n\n").encode() + payload, "mutant.nrrd", desc


# --------------------------------------------------------------------------------------------
# contained runner
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    status: str                 # ok | medrecon | bad-exception | crash | hang | read-outside | modified | multi-line
    detail: str = ""
    opened_outside: list = field(default_factory=list)
    seconds: float = 0.0


def _allowed_prefixes() -> list[str]:
    import sysconfig

    pre = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.realpath(sys.prefix),
           os.path.realpath(sys.base_prefix), "/usr/lib", "/usr/share", "/usr/local/lib", "/lib", "/proc",
           "/sys", "/dev", "/etc/localtime", "/usr/lib64"}
    for k in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(k)
        if p:
            pre.add(p)
            pre.add(os.path.realpath(p))
    import medrecon

    pre.add(os.path.realpath(Path(medrecon.__file__).parent))  # medrecon's own modules
    proj = Path(medrecon.__file__).resolve().parents[1]
    pre.add(str(proj / "__editable__"))  # its import hook and package metadata (entry points)
    pre.add(str(proj / "medrecon.egg-info"))
    return sorted(pre)


def _child(target: str, root: str, allowed: list[str], mem_bytes: int, timeout: int, w: int) -> None:
    opened: list[str] = []

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            p = os.fsdecode(args[0])
            if not os.path.isabs(p):
                p = os.path.abspath(p)
            opened.append(p)

    os.environ["MEDRECON_NO_CACHE"] = "1"
    os.environ["MEDRECON_MAX_BYTES"] = str(64 << 20)
    os.environ["MEDRECON_CODEC_TIMEOUT"] = str(max(5, timeout - 5))
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    signal.alarm(timeout)  # SIGALRM's default action ends a hung child (seen as 'hang')
    res: dict = {}
    try:
        sys.addaudithook(hook)
        from medrecon.errors import MedreconError
        from medrecon.io.loader import describe_series, load

        try:
            rows = describe_series(target)
            n_vol = 0
            for r in rows:
                if r.get("is_volume") and r.get("index") != "-":
                    vol = load(target, series=f"#{r['index']}")
                    if not np.all(np.isfinite(vol.affine)):
                        raise AssertionError("non-finite affine accepted")
                    n_vol += 1
            res = {"status": "ok", "detail": f"{len(rows)} rows, {n_vol} volumes"}
        except MedreconError as exc:
            msg = str(exc)
            res = {"status": "medrecon", "detail": f"{type(exc).__name__}: {msg}"}
            if "\n" in msg:
                res["status"] = "multi-line"
            elif os.path.basename(target) not in msg and os.path.basename(root) not in msg:
                res["status"] = "unnamed"
        except BaseException as exc:  # noqa: BLE001 - that is what we look for
            # no source lines looked up: reading them would count as a read outside the input
            tb = traceback.StackSummary.extract(traceback.walk_tb(exc.__traceback__), lookup_lines=False)
            where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
            res = {"status": "bad-exception", "detail": f"{type(exc).__name__} at {where}: {str(exc)[:200]}"}
        sys_open = [p for p in opened if not any(p == a or p.startswith(a.rstrip("/") + "/")
                                                 or (a.endswith("__editable__") and p.startswith(a)) for a in allowed)
                    and not (p == root or p.startswith(root + "/"))]
        res["outside"] = sorted(set(sys_open))[:10]
        payload = json.dumps(res).encode()
    except BaseException as exc:  # noqa: BLE001
        payload = json.dumps({"status": "bad-exception", "detail": f"harness: {exc!r}"}).encode()
    try:
        os.write(w, payload)
    finally:
        os._exit(0)


def run_one(target: Path, root: Path, timeout: int = 30, mem_bytes: int | None = None) -> Outcome:
    """Load ``target`` (a mutant under folder ``root``) in a forked, limited child."""
    if mem_bytes is None:
        # the child's address space may grow this much beyond what the parent already maps
        with open("/proc/self/statm") as fh:
            vsz = int(fh.read().split()[0]) * resource.getpagesize()
        mem_bytes = vsz + (3 << 30)
    allowed = _allowed_prefixes()
    before = _tree_hash(root)
    t0 = time.monotonic()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(str(target), str(root), allowed, mem_bytes, timeout, w)
    os.close(w)
    chunks = []
    deadline = t0 + timeout + 10
    hung = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            hung = True
            break
        ready, _, _ = select.select([r], [], [], min(left, 1.0))
        if ready:
            c = os.read(r, 1 << 16)
            if not c:
                break
            chunks.append(c)
    os.close(r)
    if hung:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    dt = time.monotonic() - t0
    if hung or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM):
        return Outcome("hang", f"no answer in {timeout} s", seconds=dt)
    if os.WIFSIGNALED(status):
        return Outcome("crash", f"killed by {signal.Signals(os.WTERMSIG(status)).name}", seconds=dt)
    try:
        res = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return Outcome("crash", "no result from the child", seconds=dt)
    if _tree_hash(root) != before:
        return Outcome("modified", "input changed", seconds=dt)
    if res.get("outside"):
        return Outcome("read-outside", res.get("detail", ""), res["outside"], seconds=dt)
    return Outcome(res.get("status", "crash"), res.get("detail", ""), seconds=dt)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


GOOD = ("ok", "medrecon")


def make_mutant(rnd: random.Random, workdir: Path, family: str | None = None) -> tuple[Path, Path, str]:
    """Write one mutant under a fresh folder in ``workdir``; return (target, folder, description)."""
    family = family or rnd.choices(["dicom", "nifti", "nrrd"], weights=[8, 1, 1])[0]
    folder = Path(workdir) / f"m{rnd.randrange(1 << 40):010x}"
    folder.mkdir(parents=True)
    if family == "dicom":
        seed = DATA / rnd.choice(DICOM_SEEDS)
        kind = rnd.choice(MUTATIONS)
        data, name, desc = mutate(seed.read_bytes(), kind, rnd, name=seed.name)
        desc = f"{seed.name}: {kind}: {desc}"
    elif family == "nifti":
        seed = DATA / rnd.choice(NIFTI_SEEDS)
        data, name, desc = mutate_nifti(seed.read_bytes(), rnd)
        desc = f"{seed.name}: nifti: {desc}"
    else:
        data, name, desc = mutate_nrrd(nrrd_seed(folder), rnd)
        desc = f"nrrd: {desc}"
        (folder / "data1.raw").write_bytes(b"\0" * 240)
    target = folder / name
    target.write_bytes(data)
    for p in folder.iterdir():
        p.chmod(0o444)  # inputs read-only as well: a write attempt would fail loudly
    return target, folder, desc


def cleanup(folder: Path) -> None:
    for p in folder.rglob("*"):
        try:
            p.chmod(0o644)
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)
