"""The DICOM loader on small series written here with pydicom, with known geometry, plus every
error path (empty folder, non-DICOM only, truncated, short pixel data, undecodable codec)."""
from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from medrecon.errors import DicomError, InputError, MedreconError, SeriesSelectionError
from medrecon.io.dicom.pixels import fix_bits
from medrecon.io.loader import describe_series, load, load_series

R = np.array([1.0, 0.0, 0.0])
C = np.array([0.0, 1.0, 0.0])


def write_slice(path: Path, pixels: np.ndarray, ipp, iop=(1, 0, 0, 0, 1, 0), spacing=(0.5, 0.8),
                series_uid="1.2.3.4", series_number=5, instance=1, slope=1.0, intercept=0.0,
                bits_stored=16, signed=True, image_type=("ORIGINAL", "PRIMARY", "AXIAL"), modality="CT",
                ts=ExplicitVRLittleEndian, preamble=True, extra=None):
    """One classic CT/MR image with the given geometry; ``pixels`` is (rows, cols) stored values."""
    meta = FileMetaDataset()
    sop = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPClassUID = sop
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-ID-123"
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = "synthetic"
    ds.InstanceNumber = instance
    ds.ImageType = list(image_type)
    ds.ImagePositionPatient = [f"{x:.6f}" for x in ipp]
    ds.ImageOrientationPatient = [f"{x:.6f}" for x in iop]
    ds.PixelSpacing = [f"{spacing[0]}", f"{spacing[1]}"]
    ds.SliceThickness = "1.0"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope = f"{slope}"
    ds.RescaleIntercept = f"{intercept}"
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    ds.PixelData = pixels.astype("<i2" if signed else "<u2").tobytes()
    if ts == RLELossless:
        ds.compress(RLELossless, pixels.astype(np.int16 if signed else np.uint16))
    ds.save_as(path, enforce_file_format=preamble, implicit_vr=False, little_endian=True)
    return path


def make_series(folder: Path, n=6, rows=12, cols=10, step=2.0, tilt_shift=0.0, skip=(), seed=0, **kw):
    """n slices along +z (LPS S) at ``step`` mm, optionally sheared along the column direction."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = rng.integers(-1000, 2000, size=(n, rows, cols)).astype(np.int16)
    for k in range(n):
        if k in skip:
            continue
        ipp = np.array([-10.0, 20.0, 30.0]) + np.array([0, tilt_shift * k, step * k])
        write_slice(folder / f"f{(k * 37) % n:03d}_{k}", data[k], ipp, instance=n - k, **kw)
    return data


# --- geometry -------------------------------------------------------------------------------------
def test_affine_and_voxels_from_known_geometry(tmp_path):
    data = make_series(tmp_path, n=5, step=2.5)
    vol = load(tmp_path)
    expect = np.array([[0.8, 0, 0, -10.0], [0, 0.5, 0, 20.0], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    assert np.allclose(vol.affine, expect)
    assert vol.shape == (10, 12, 5)
    assert np.array_equal(vol.array, np.transpose(data, (2, 1, 0)))  # [col, row, slice]
    assert vol.meta["warnings"] == []
    # the voxel (i=3, j=4, k=2) centre is where DICOM says pixel (row 4, col 3) of slice 2 is
    assert np.allclose(vol.index_to_lps(np.array([[3, 4, 2]]))[0], [-10 + 3 * 0.8, 20 + 4 * 0.5, 30 + 5.0])


def test_rescale_and_bits_stored(tmp_path):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 4096, size=(4, 6)).astype(np.uint16)
    junk = stored | np.uint16(0xA000)  # garbage in bits 12..15
    write_slice(tmp_path / "a", junk, (0, 0, 0), bits_stored=12, signed=False, slope=2.0, intercept=-100.0)
    vol = load(tmp_path / "a")
    assert vol.array.dtype == np.float32
    assert np.allclose(vol.array[:, :, 0], stored.T.astype(np.float64) * 2 - 100)


def test_signed_12_bit_sign_extension():
    u = np.array([0x0F0F, 0x0800, 0x07FF, 0xF801, 0x0FFF], dtype=np.uint16)
    out = fix_bits(u.view(np.int16).copy(), 12, 11, signed=True)
    assert out.tolist() == [-241, -2048, 2047, -2047, -1]
    out = fix_bits(u.copy(), 12, 11, signed=False)
    assert out.tolist() == [0x0F0F, 0x0800, 0x07FF, 0x0801, 0x0FFF]


def test_uneven_spacing_resampled_with_warning(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    zs = [0.0, 1.0, 2.0, 4.0, 5.0]  # one slice missing at z = 3
    for k, z in enumerate(zs):
        write_slice(folder / f"x{k}", np.full((4, 4), 10 * k, np.int16), (0, 0, z))
    rows = describe_series(folder)
    assert any("missing slices" in w for w in rows[0]["warnings"])
    vol = load(folder)
    assert vol.shape == (4, 4, 6) and vol.spacing[2] == pytest.approx(1.0)
    assert vol.array[0, 0, :].tolist() == [0, 10, 20, 25, 30, 40]  # z=3 interpolated
    assert any("resampled" in w for w in vol.meta["warnings"])
    kept = load(folder, resample_gaps=False)
    assert kept.shape == (4, 4, 5)
    assert any("approximate" in w for w in kept.meta["warnings"])


def test_tilt_synthetic_corrected_and_kept(tmp_path):
    # 4 slices 2 mm apart whose origin moves 1 mm (= 2 rows of 0.5 mm) along +y per slice
    folder = tmp_path / "t"
    n, rows, cols = 4, 8, 3
    folder.mkdir()
    data = np.zeros((n, rows, cols), np.int16)
    for k in range(n):
        data[k, 3, :] = 100  # a bright line at row 3 of every slice
        write_slice(folder / f"s{k}", data[k], (0, 1.0 * k, 2.0 * k), spacing=(0.5, 1.0))
    info = describe_series(folder)[0]
    assert info["tilt_deg"] == pytest.approx(np.degrees(np.arctan(0.5)), abs=0.01)
    kept = load(folder, correct_tilt=False)
    assert np.allclose(kept.affine[:3, 2], [0, 1.0, 2.0])  # sheared slice axis
    assert np.array_equal(kept.array, np.transpose(data, (2, 1, 0)))
    fixed = load(folder)
    assert np.allclose(fixed.affine[:3, 2], [0, 0, 2.0])
    assert fixed.shape == (3, rows + 6, 4)  # field of view grows by 3 slices x 2 rows
    # the bright line sits at y = 1.5 + k mm in world; find it in each corrected slice
    for k in range(n):
        j = int(np.argmax(fixed.array[0, :, k]))
        y = fixed.index_to_lps(np.array([[0, j, k]]))[0, 1]
        assert y == pytest.approx(1.5 + 1.0 * k)


def test_duplicate_positions_become_4d(tmp_path):
    for t in range(3):
        for k in range(4):
            write_slice(tmp_path / f"t{t}_{k}", np.full((4, 5), 100 * t + k, np.int16), (0, 0, 3.0 * k),
                        instance=t * 4 + k + 1, extra={"TemporalPositionIdentifier": t + 1})
    vol = load(tmp_path)
    assert vol.shape == (5, 4, 4, 3)
    assert vol.array[0, 0, 2, :].tolist() == [2, 102, 202]
    assert vol.meta["frame_axis"] == "time"


def test_unequal_images_per_position_refused(tmp_path):
    for k in range(3):
        write_slice(tmp_path / f"a{k}", np.zeros((4, 4), np.int16), (0, 0, 2.0 * k), instance=k + 1)
    write_slice(tmp_path / "dup", np.zeros((4, 4), np.int16), (0, 0, 0.0), instance=9)
    rows = describe_series(tmp_path)
    assert not rows[0]["is_volume"] and "unequal" in rows[0]["reason"]
    with pytest.raises(DicomError, match="unequal"):
        load(tmp_path)


def test_localizer_split_off_and_main_volume_chosen(tmp_path):
    make_series(tmp_path, n=4)
    write_slice(tmp_path / "scout", np.zeros((12, 10), np.int16), (0, 0, 0), iop=(0, 1, 0, 0, 0, -1),
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    rows = describe_series(tmp_path)
    assert len(rows) == 2 and sorted(r["is_volume"] for r in rows) == [False, True]
    vol = load(tmp_path)  # the only volume is taken
    assert vol.shape == (10, 12, 4)


def test_mixed_orientation_series_not_a_volume(tmp_path):
    for k, iop in enumerate([(1, 0, 0, 0, 1, 0), (0, 1, 0, 0, 0, -1), (1, 0, 0, 0, 0, -1)]):
        write_slice(tmp_path / f"o{k}", np.zeros((4, 4), np.int16), (0, 0, k), iop=iop, modality="MR",
                    image_type=("ORIGINAL", "PRIMARY", "M"))
    rows = describe_series(tmp_path)
    assert len(rows) == 3 and not any(r["is_volume"] for r in rows)
    with pytest.raises(DicomError, match="orientations"):
        load(tmp_path, series="#1")


# --- inputs: zip, gz, list, no meta, non-DICOM -----------------------------------------------------
def test_zip_gz_list_and_headerless_inputs(tmp_path):
    src = tmp_path / "src"
    data = make_series(src, n=3)
    ref = load(src)
    zpath = tmp_path / "study.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(src.iterdir()):
            zf.write(f, f"sub/{f.name}")
        zf.writestr("sub/readme.txt", "not dicom")
    assert np.array_equal(load(zpath).array, ref.array)
    gz = tmp_path / "gz"
    gz.mkdir()
    for f in src.iterdir():
        (gz / (f.name + ".dcm.gz")).write_bytes(gzip.compress(f.read_bytes()))
    assert np.array_equal(load(gz).array, ref.array)
    files = sorted(str(f) for f in src.iterdir())
    assert np.array_equal(load(files).array, ref.array)
    # a file without preamble and file meta
    nm = tmp_path / "nometa"
    nm.mkdir()
    for k, f in enumerate(sorted(src.iterdir())):
        ds = pydicom.dcmread(f)
        write_slice(nm / f"n{k}", ds.pixel_array, [float(x) for x in ds.ImagePositionPatient], preamble=False)
    assert (nm / "n0").read_bytes()[128:132] != b"DICM"
    assert np.array_equal(load(nm).array, ref.array)
    assert data.shape == (3, 12, 10)


def test_rle_series_decoded_in_parallel_equals_native(tmp_path):
    nat = tmp_path / "nat"
    rle = tmp_path / "rle"
    make_series(nat, n=12, rows=16, cols=16, seed=3)
    make_series(rle, n=12, rows=16, cols=16, seed=3, ts=RLELossless)
    a = load(nat)
    b = load(rle, workers=2)
    c = load(rle, workers=1)
    assert np.array_equal(a.array, b.array) and np.array_equal(a.array, c.array)
    assert "RLE" in describe_series(rle)[0]["transfer_syntax"]
    # an error inside a worker process reaches the caller as the same one-line DicomError
    victim = sorted(rle.iterdir())[5]
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # RLE bytes labelled JPEG 2000
    ds.save_as(victim, enforce_file_format=True)
    with pytest.raises(DicomError) as exc:
        load(rle, workers=2)
    assert "cannot decode pixel data (JPEG 2000" in one_line(exc.value, victim.name)


def test_series_selection(tmp_path):
    make_series(tmp_path / "a", n=3, series_uid="1.2.3.4.1", series_number=7)
    make_series(tmp_path / "b", n=4, series_uid="1.2.3.4.2", series_number=1)
    with pytest.raises(SeriesSelectionError) as exc:
        load(tmp_path)
    msg = str(exc.value)
    assert "2 series" in msg and "series 7" in msg and "\n" not in msg
    assert load(tmp_path, series=7).shape[2] == 3          # SeriesNumber
    assert load(tmp_path, series="1").shape[2] == 4        # SeriesNumber 1 (index 1 is series 1 too)
    assert load(tmp_path, series="#2").shape[2] == 3       # index
    with pytest.raises(SeriesSelectionError, match="no SeriesNumber 2"):  # never the index silently
        load(tmp_path, series=2)
    with pytest.raises(SeriesSelectionError):
        load(tmp_path, series=99)
    infos = load_series(tmp_path)
    assert [s.index for s in infos] == [1, 2] and infos[1].volume.shape[2] == 3


def test_no_identifiers_in_meta_or_description(tmp_path):
    make_series(tmp_path, n=3)
    vol = load(tmp_path)
    text = repr(vol.meta) + repr(describe_series(tmp_path))
    assert "Doe" not in text and "SECRET" not in text and "1.2.3.4" not in text


# --- errors ---------------------------------------------------------------------------------------
def one_line(exc: MedreconError, name: str):
    msg = str(exc)
    assert "\n" not in msg and name in msg
    return msg


def test_error_empty_folder(tmp_path):
    with pytest.raises(InputError) as exc:
        load(tmp_path)
    assert "empty" in one_line(exc.value, str(tmp_path))


def test_error_only_non_dicom(tmp_path):
    (tmp_path / "a.txt").write_text("hello " * 50)
    (tmp_path / "b.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError) as exc:
        load(tmp_path)
    assert "no DICOM" in one_line(exc.value, str(tmp_path))


def test_error_missing_path(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load(tmp_path / "nope")


@pytest.mark.parametrize("cut", [300, 1000])
def test_error_truncated_header(tmp_path, cut):
    make_series(tmp_path, n=3)
    victim = sorted(tmp_path.iterdir())[1]
    victim.write_bytes(victim.read_bytes()[:cut])
    with pytest.raises(DicomError) as exc:
        load(tmp_path)
    assert "truncated" in one_line(exc.value, victim.name)


def test_error_pixel_data_shorter_than_header(tmp_path):
    make_series(tmp_path, n=3)
    victim = sorted(tmp_path.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.raises(DicomError) as exc:
        load(tmp_path)
    assert "shorter than the header says" in one_line(exc.value, victim.name)


def test_error_declared_pixel_length_too_short(tmp_path):
    write_slice(tmp_path / "a", np.zeros((8, 8), np.int16), (0, 0, 0))
    ds = pydicom.dcmread(tmp_path / "a")
    ds.PixelData = ds.PixelData[:64]  # element says 64 bytes, Rows x Columns need 128
    ds.save_as(tmp_path / "a", enforce_file_format=True)
    with pytest.raises(DicomError) as exc:
        load(tmp_path / "a")
    assert "shorter than the header says" in one_line(exc.value, "a")


def test_error_undecodable_codec(tmp_path):
    path = write_slice(tmp_path / "a", np.zeros((8, 8), np.int16), (0, 0, 0), ts=RLELossless)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder here
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomError) as exc:
        load(path)
    assert "cannot decode pixel data" in one_line(exc.value, "a")


def test_error_corrupt_compressed_stream(tmp_path):
    path = write_slice(tmp_path / "a", np.arange(64, dtype=np.int16).reshape(8, 8), (0, 0, 0), ts=RLELossless)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.90"  # RLE bytes labelled as JPEG 2000
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(DicomError) as exc:
        load(path)
    assert "JPEG 2000" in one_line(exc.value, "a")


def test_inputs_never_modified(tmp_path):
    make_series(tmp_path, n=3)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    load(tmp_path)
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before


# --- round trip with the project's own DICOM writer (every lossless syntax it offers) --------------
@pytest.mark.parametrize("syntax", ["explicit", "implicit", "deflated", "rle", "jpeg2000", "jpegls", "jpeg-lossless"])
def test_round_trip_with_dicom_writer(tmp_path, syntax):
    dw = pytest.importorskip("medrecon.io.dicom.write")
    from medrecon.volume import Volume

    th = np.deg2rad(12)
    A = np.eye(4)
    A[:3, :3] = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]]) @ np.diag([0.7, 0.9, 2.5])
    A[:3, 3] = [5.0, -7.0, 11.0]
    rng = np.random.default_rng(4)
    arr = rng.integers(-1024, 3000, size=(24, 20, 5)).astype(np.int16)
    dw.write_dicom_series(Volume(arr, A, {"modality": "CT"}), tmp_path, modality="CT", transfer_syntax=syntax)
    vol = load(tmp_path)
    assert np.allclose(vol.affine, A, atol=1e-4)
    assert np.array_equal(vol.array, arr)


def test_parallel_header_scan_equals_serial_and_reports_errors(tmp_path, monkeypatch):
    from medrecon.io.dicom.scan import PARALLEL_SCAN_MIN_FILES, scan

    monkeypatch.setenv("MEDRECON_NO_CACHE", "1")  # both scans really parse (no header cache)

    n = PARALLEL_SCAN_MIN_FILES + 4
    for k in range(n):
        write_slice(tmp_path / f"s{k:04d}", np.full((4, 4), k, np.int16), (0, 0, 1.5 * k), instance=k + 1)
    (tmp_path / "notes.txt").write_text("not dicom")
    par = scan(tmp_path, workers=2)
    ser = scan(tmp_path, workers=1)
    assert [f.source for f in par.frames] == [f.source for f in ser.frames]
    assert par.skipped == ser.skipped and len(par.skipped) == 1
    vol = load(tmp_path)
    assert vol.shape == (4, 4, n) and vol.array[0, 0, :].tolist() == list(range(n))
    victim = tmp_path / "s0100"
    data = victim.read_bytes()
    victim.write_bytes(data[:250])  # inside the header: found while scanning (in a worker)
    with pytest.raises(DicomError) as exc:
        scan(tmp_path, workers=2)
    assert "truncated" in one_line(exc.value, "s0100")
    victim.write_bytes(data[:-10])  # inside the pixel data: found while decoding
    with pytest.raises(DicomError) as exc:
        load(tmp_path)
    assert "shorter than the header says" in one_line(exc.value, "s0100")


def _load_in_daemon(folder):
    return load(folder, workers=2).array.sum()


def test_load_inside_a_daemonic_pool_worker(tmp_path):
    """Pool workers may not start processes: decoding then stays in the worker, and works."""
    import multiprocessing as mp

    make_series(tmp_path, n=12, rows=8, cols=8, ts=RLELossless)
    with mp.get_context("fork").Pool(1) as pool:
        total = pool.apply(_load_in_daemon, (tmp_path,))
    assert total == load(tmp_path).array.sum()


_PARENT_PID = None


def _dying_decode_job(job):
    """Stands for a decode worker that vanishes (say, killed for memory) on one job."""
    import os

    from medrecon.io.dicom import pixels as px

    if os.getpid() != _PARENT_PID and job[3] == 3:
        os._exit(1)
    src, frame_idx, ts, pos = job
    return pos, px._decode_with_pydicom(src, frame_idx, ts)


def test_decoding_survives_a_dead_worker(tmp_path, monkeypatch):
    """If a decode worker dies the rest is decoded in this process, with the same result."""
    import os

    import medrecon.io.dicom.pixels as px

    global _PARENT_PID
    make_series(tmp_path, n=16, rows=8, cols=8, ts=RLELossless)
    expect = load(tmp_path, workers=1).array
    _PARENT_PID = os.getpid()
    monkeypatch.setattr(px, "_decode_job", _dying_decode_job)
    assert np.array_equal(load(tmp_path, workers=2).array, expect)


# --- geometry helpers on hand-made positions ----------------------------------------------------
def test_analyse_positions_cases():
    from medrecon.io.dicom.geometry import analyse_positions, axis_codes, orientation_label

    iop = np.array([1, 0, 0, 0, 1, 0], float)
    z = np.array([0, 2, 4, 6, 8], float)
    pos = np.stack([np.zeros(5), np.zeros(5), z], 1)[::-1]  # given in reverse order
    g = analyse_positions(pos, iop, (0.5, 0.5))
    assert g.uniform and not g.tilted and g.nominal_spacing == pytest.approx(2.0)
    assert g.d.tolist() == z.tolist()  # sorted along the normal
    g = analyse_positions(pos[[0, 1, 3, 4]], iop, (0.5, 0.5))  # z = 4 missing
    assert not g.uniform and g.missing == 1 and g.nominal_spacing == pytest.approx(2.0)
    g = analyse_positions(np.stack([np.zeros(4), np.zeros(4), [0, 1, 2.5, 7]], 1), iop, (0.5, 0.5))
    assert not g.uniform and g.missing == 0 and "non-uniform" in g.warnings[0]
    tilt = np.stack([np.zeros(5), np.tan(np.deg2rad(15)) * z, z], 1)
    g = analyse_positions(tilt, iop, (0.5, 0.5))
    assert g.tilted and g.tilt_deg == pytest.approx(15.0, abs=1e-6) and g.uniform
    assert np.allclose(g.b, np.tan(np.deg2rad(15)) * z / 0.5)  # drift in rows
    assert orientation_label(iop) == "axial"
    assert orientation_label(np.array([0, 1, 0, 0, 0, -1], float)) == "sagittal"
    assert orientation_label(np.array([1, 0, 0, 0, np.cos(0.2), -np.sin(0.2)])) == "oblique axial"
    assert axis_codes(np.diag([-1.0, 1.0, -2.0, 1.0])) == "RPI"


def test_duplicate_copies_of_a_series_are_dropped(tmp_path):
    import shutil

    data = make_series(tmp_path / "a", n=4)
    shutil.copytree(tmp_path / "a", tmp_path / "copy_of_a")
    rows = describe_series(tmp_path)
    assert len(rows) == 1 and rows[0]["size"] == [10, 12, 4]
    assert any("4 duplicate image(s)" in w for w in rows[0]["warnings"])
    vol = load(tmp_path)
    assert np.array_equal(vol.array, np.transpose(data, (2, 1, 0)))
