"""Each class of hostile input found by fuzzing, made on purpose from real files: every one ends in
a one-line MedreconError naming the file (or loads correctly), never another exception, a crash,
a hang or unbounded memory."""
from __future__ import annotations

import gzip
import io
import os
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

import rel_harness as H
from medrecon.errors import DicomError, InputError, MedreconError
from medrecon.io.loader import describe_series, load

pytestmark = pytest.mark.realdata
TS = H.DATA / "dicom_small_singles_pydicom" / "from_pydicom_test_files"
CT = TS / "CT_small.dcm"


def _variant(src: Path, dest: Path, **attrs) -> Path:
    ds = pydicom.dcmread(src)
    for k, v in attrs.items():
        from pydicom.datadict import dictionary_VR, tag_for_keyword

        tag = tag_for_keyword(k)
        vr = dictionary_VR(tag)
        if isinstance(v, str) and vr in ("US", "SS", "UL", "DS", "IS"):
            vr = "LO"  # text where numbers belong, whatever it says
        ds.add_new(tag, vr, v)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest, enforce_file_format=False)
    return dest


def _contained(path: Path, want: str | None = None) -> str:
    out = H.run_one(path, path.parent, timeout=60)
    assert out.status == "medrecon", f"{out.status}: {out.detail}"
    if want:
        assert want.lower() in out.detail.lower(), out.detail
    return out.detail


def test_reliability_deep_nested_sequence(tmp_path):
    data, name, _ = H.mutate(CT.read_bytes(), "nested_sequence", random.Random(3), "ct.dcm")
    (tmp_path / "ct.dcm").write_bytes(H._nested_sequence(0) + b"" if False else data)
    data = CT.read_bytes()
    vr_off, _ = H._explicit_header_offset(data, [e for e in H._elements(data)[0] if e[0] >> 16 >= 8][0][2])
    (tmp_path / "ct.dcm").write_bytes(data[:vr_off - 4] + H._nested_sequence(3000) + data[vr_off - 4:])
    _contained(tmp_path / "ct.dcm")


def test_reliability_deflate_on_raw_and_corrupt_gz(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ct.dcm").write_bytes(H._with_transfer_syntax(CT.read_bytes(), "1.2.840.10008.1.2.1.99"))
    _contained(tmp_path / "a" / "ct.dcm")
    gz = bytearray(gzip.compress(CT.read_bytes()))
    gz[len(gz) // 2:len(gz) // 2 + 16] = b"\xff" * 16
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ct.dcm.gz").write_bytes(bytes(gz))
    _contained(tmp_path / "b" / "ct.dcm.gz", "gzip")


@pytest.mark.parametrize("kind", ["odd_length", "bad_vr", "vm_lie", "length_field"])
def test_reliability_lengths_and_vrs(tmp_path, kind):
    for i in range(4):
        data, name, desc = H.mutate(CT.read_bytes(), kind, random.Random(i), "ct.dcm")
        d = tmp_path / f"{kind}{i}"
        d.mkdir()
        (d / name).write_bytes(data)
        out = H.run_one(d / name, d, timeout=60)
        assert out.status in H.GOOD, f"{desc}: {out.status} {out.detail}"


@pytest.mark.parametrize("attrs,want", [
    ({"ImagePositionPatient": "abc\\def\\ghi"}, None),
    ({"NumberOfFrames": "abc"}, "NumberOfFrames"),
    ({"PixelSpacing": "1"}, None),
    ({"ImageOrientationPatient": "nan\\0\\0\\0\\1\\0"}, "ImageOrientationPatient"),
    ({"ImageOrientationPatient": "0\\0\\0\\0\\0\\0"}, "ImageOrientationPatient"),
    ({"ImageOrientationPatient": "1\\0\\0\\1\\0\\0"}, "parallel"),
    ({"ImagePositionPatient": "inf\\0\\0"}, None),
    ({"PixelSpacing": "0\\0"}, "PixelSpacing"),
    ({"RescaleSlope": "0"}, "RescaleSlope"),
    ({"PhotometricInterpretation": "PALETTE COLOR"}, "PALETTE"),
    ({"NumberOfFrames": "1000000"}, "NumberOfFrames"),
    ({"Rows": 65535}, None),
    ({"BitsAllocated": 64}, None),
])
def test_reliability_header_lies(tmp_path, attrs, want):
    p = _variant(CT, tmp_path / "ct.dcm", **attrs)
    out = H.run_one(p, p.parent, timeout=60)
    if want is None:  # refused or loaded, but never a non-finite grid (checked in the child)
        assert out.status in H.GOOD, out.detail
    else:
        assert out.status == "medrecon" and want.lower() in out.detail.lower(), out.detail


@pytest.mark.parametrize("seed,ts,attrs", [
    ("MR_small_jp2klossless.dcm", None, {"PhotometricInterpretation": "YBR_FULL"}),
    ("MR_small_jpeg_ls_lossless.dcm", None, {"Rows": 65535, "Columns": 65535}),
    ("MR_small_jpeg_ls_lossless.dcm", None, {"BitsAllocated": 64}),
])
def test_reliability_codec_headers_checked_before_decoding(tmp_path, seed, ts, attrs):
    """The combinations that made GDCM abort the process are refused from the header."""
    p = _variant(TS / seed, tmp_path / "x.dcm", **attrs)
    _contained(p)


def test_reliability_codec_abort_is_contained():
    """A decoder that aborts (SIGABRT) ends in a DicomError naming the file; the caller lives."""
    from medrecon.io.limits import run_contained

    with pytest.raises(DicomError, match="SIGABRT") as e:
        run_contained(os.abort, (), "/data/x.dcm")
    assert "/data/x.dcm" in str(e.value)

    class Panic(BaseException):  # what pyo3's PanicException derives from
        pass

    def panics():
        raise Panic("rle decoder panicked")

    with pytest.raises(DicomError, match="Panic"):
        run_contained(panics, (), "x.dcm")


def test_reliability_corrupt_rle_never_escapes(tmp_path):
    seed = TS / "MR_small_RLE.dcm"
    for i in range(6):
        data, name, desc = H.mutate(seed.read_bytes(), "pixel_bytes", random.Random(i), "rle.dcm")
        d = tmp_path / f"r{i}"
        d.mkdir()
        (d / name).write_bytes(data)
        out = H.run_one(d / name, d, timeout=60)
        assert out.status in H.GOOD, f"{desc}: {out.status} {out.detail}"


def test_reliability_bombs_refused_within_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDRECON_MAX_BYTES", str(32 << 20))
    monkeypatch.setenv("MEDRECON_NO_CACHE", "1")
    head = CT.read_bytes()[:132]
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "x.dcm.gz").write_bytes(gzip.compress(head + bytes(64 << 20), 6))
    with pytest.raises(MedreconError, match="limit"):
        describe_series(tmp_path / "g")
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.dcm", head + bytes(64 << 20))
    with pytest.raises(MedreconError, match="limit"):
        describe_series(z)
    hdr = bytearray(gzip.decompress((H.DATA / H.NIFTI_SEEDS[0]).read_bytes())[:352])
    struct.pack_into("<8h", hdr, 40, 3, 2048, 2048, 512, 1, 1, 1, 1)
    (tmp_path / "big.nii.gz").write_bytes(gzip.compress(bytes(hdr) + bytes(1 << 20)))
    with pytest.raises(InputError, match="limit"):
        load(tmp_path / "big.nii.gz")
    struct.pack_into("<8h", hdr, 40, 3, 64, 64, 64, 1, 1, 1, 1)
    (tmp_path / "short.nii.gz").write_bytes(gzip.compress(bytes(hdr) + bytes(1000)))
    with pytest.raises(InputError, match="truncated"):
        load(tmp_path / "short.nii.gz")


def test_reliability_nifti_and_nrrd_geometry(tmp_path):
    raw = bytearray(gzip.decompress((H.DATA / H.NIFTI_SEEDS[0]).read_bytes()))
    struct.pack_into("<h", raw, 254, 1)
    struct.pack_into("<4f", raw, 280, float("nan"), 0, 0, 0)
    (tmp_path / "nan.nii.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match="sform"):
        load(tmp_path / "nan.nii.gz")
    text = H.nrrd_seed(tmp_path).replace(b"(1,0,0) (0,1,0)", b"(0,0,0) (0,1,0)")
    (tmp_path / "z.nrrd").write_bytes(text)
    with pytest.raises(MedreconError, match="z.nrrd"):
        load(tmp_path / "z.nrrd")


@pytest.mark.parametrize("target", ["/etc/passwd", "../../../../etc/passwd", "../outside.raw"])
def test_reliability_nrrd_detached_data_stays_in_folder(tmp_path, target):
    (tmp_path / "outside.raw").write_bytes(bytes(240))
    d = tmp_path / "in"
    d.mkdir()
    hdr = H.nrrd_seed(d).split(b"\n\n")[0].decode().replace("encoding: raw", "encoding: raw\ndata file: " + target)
    (d / "x.nhdr").write_text(hdr + "\n\n")
    with pytest.raises(InputError, match="outside the header's folder"):
        load(d / "x.nhdr")
    (d / "ok.raw").write_bytes(np.arange(120, dtype="<i2").tobytes())
    (d / "ok.nhdr").write_text(hdr.replace("data file: " + target, "data file: ok.raw") + "\n\n")
    assert load(d / "ok.nhdr").shape == (4, 5, 6)


def test_reliability_symlinks_not_followed_out_and_dangling_ok(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.dcm").write_bytes(CT.read_bytes())
    d = tmp_path / "in"
    d.mkdir()
    (d / "mr.dcm").write_bytes((TS / "MR_small.dcm").read_bytes())
    (d / "link.dcm").symlink_to(outside / "secret.dcm")
    (d / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    rows = describe_series(d)
    vols = [r for r in rows if r["kind"] != "non-image"]
    assert len(vols) == 1 and vols[0]["modality"] == "MR"  # the CT behind the link is not read
    unreadable = [r for r in rows if r["kind"] == "non-image" and r["description"] == "unreadable file"]
    assert len(unreadable) == 1 and unreadable[0]["n_files"] == 2  # the link out and the dangling one
    assert load(d).shape[:2] == (64, 64)


def test_reliability_output_folder_inside_input_not_read_back(tmp_path):
    from medrecon.io.atomic import atomic_write_bytes

    d = tmp_path / "in"
    d.mkdir()
    (d / "mr.dcm").write_bytes((TS / "MR_small.dcm").read_bytes())
    atomic_write_bytes(d / "out" / "copy.dcm", CT.read_bytes())  # an output folder made by medrecon
    assert (d / "out" / ".medrecon-output").exists()
    rows = [r for r in describe_series(d) if r["kind"] != "non-image"]
    assert [r["modality"] for r in rows] == ["MR"]


def test_reliability_outputs_never_overwrite_inputs(tmp_path):
    from medrecon.io.loader import convert

    p = tmp_path / "x.nii.gz"
    p.write_bytes((H.DATA / H.NIFTI_SEEDS[0]).read_bytes())
    before = p.read_bytes()
    with pytest.raises(InputError, match="overwrite the input"):
        convert(p, p)
    assert p.read_bytes() == before


def test_reliability_many_non_dicom_files_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDRECON_NO_CACHE", "1")
    d = tmp_path / "junk"
    d.mkdir()
    for i in range(10_000):
        (d / f"f{i:05d}").write_bytes(b"just some text, not DICOM at all\n" * 3)
    with pytest.raises(InputError, match="10000 files, none readable as DICOM"):
        describe_series(d)


def test_reliability_file_names_never_reach_terminal_raw(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    bad = d / "evil\n\x1b[31mred\x07.dcm"
    bad.write_bytes(CT.read_bytes()[:132] + b"\xff" * 40)  # DICM preamble, corrupt header
    env = dict(os.environ, MEDRECON_NO_CACHE="1", COLUMNS="200")
    r = subprocess.run([sys.executable, "-m", "medrecon", "info", str(d)], capture_output=True, env=env,
                       timeout=120)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "\x1b[31m" not in err and "\x07" not in err
    lines = err.strip().split("\n")  # one line per message: the name's newline is escaped
    assert all(ln.startswith(("warning:", "error:")) for ln in lines), lines
    assert lines[-1].startswith("error:") and "evil\\n\\x1b[31mred\\x07.dcm" in err


def test_reliability_info_and_convert_print_names_escaped(tmp_path):
    name = "ev[red]il\n\x1b[31mx.nii.gz"
    src = tmp_path / name
    src.write_bytes((H.DATA / H.NIFTI_SEEDS[0]).read_bytes())
    env = dict(os.environ, MEDRECON_NO_CACHE="1", COLUMNS="200")
    for args in (["info", str(src)], ["convert", str(src), "-o", str(tmp_path / "o\nut.nrrd")]):
        r = subprocess.run([sys.executable, "-m", "medrecon", *args], capture_output=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        out = r.stdout.decode() + r.stderr.decode()
        assert "\x1b[31m" not in out and "o\nut" not in out
        assert ("ev[red]il" in out and "\\x1b[31m" in out) if args[0] == "info" else "o\\nut.nrrd" in out
