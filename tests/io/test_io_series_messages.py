"""`--series` refusals say what exists here, in the words of the user guide (issue 22): an index
that does not exist is reported as an index with the indexes that do; a series without a
SeriesNumber says so (never "series -"); a SeriesNumber shared by several series lists only
those."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medrecon.errors import SeriesSelectionError
from medrecon.io.dicom.write import write_dicom_series
from medrecon.io.loader import load
from medrecon.volume import Volume

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


def _vol(n=3, k=0):
    arr = (np.arange(8 * 6 * n).reshape(8, 6, n) % 50 + k).astype(np.int16)
    return Volume(arr, np.diag([1.0, 1.0, 2.0, 1.0]), {"modality": "CT"})


def test_io_series_index_that_does_not_exist(tmp_path):
    write_dicom_series(_vol(), tmp_path / "one", series_number=7)
    with pytest.raises(SeriesSelectionError) as e:
        load(tmp_path / "one", series="#3")
    msg = str(e.value)
    assert "no series #3" in msg and "#1" in msg and "SeriesNumbers here: 7" in msg
    assert "no series 3;" not in msg
    assert load(tmp_path / "one", series="#1").array.shape == (8, 6, 3)


def test_io_series_without_series_number_is_named_so(tmp_path):
    files = write_dicom_series(_vol(), tmp_path / "a" / "x", series_number=4)
    write_dicom_series(_vol(k=5), tmp_path / "a" / "y", series_number=5)
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.SeriesNumber
        ds.save_as(f)
    with pytest.raises(SeriesSelectionError) as e:
        load(tmp_path / "a", series=99)
    msg = str(e.value)
    assert "series -" not in msg and "no SeriesNumber," in msg
    assert "no SeriesNumber 99 and no index #99" in msg and "SeriesNumbers here: 5" in msg


def test_io_series_shared_number_lists_only_those(tmp_path):
    for i in range(3):
        write_dicom_series(_vol(k=i), tmp_path / "m" / f"e{i}", series_number=2001)
    for i, sn in enumerate((7, 8, 9, 10)):
        write_dicom_series(_vol(k=10 + i), tmp_path / "m" / f"o{i}", series_number=sn)
    with pytest.raises(SeriesSelectionError) as e:
        load(tmp_path / "m", series=2001)
    msg = str(e.value)
    listed = re.findall(r"#\d+: series (\d+)", msg)
    assert listed == ["2001"] * 3, msg
    assert "SeriesNumber 2001 holds 3 series" in msg and "'#N'" in msg


def test_io_series_messages_match_the_user_guide(tmp_path):
    """The error line quoted in the user guide is the one the code prints."""
    write_dicom_series(_vol(), tmp_path / "g" / "a", series_number=7)
    write_dicom_series(_vol(k=3), tmp_path / "g" / "b", series_number=9)
    with pytest.raises(SeriesSelectionError) as e:
        load(tmp_path / "g", series=2)
    quoted = [ln[len("error: "):] for ln in GUIDE.read_text().splitlines() if ln.startswith("error: no SeriesNumber")]
    assert quoted and quoted[0] in str(e.value)
