"""`medrecon info` checks what `load` checks (issue 22): a truncated file (native or compressed
pixel data) makes its series "not a volume" with the reason, instead of "loadable"."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import shared_path
from medrecon.errors import DicomError
from medrecon.io.dicom.write import write_dicom_series
from medrecon.io.loader import describe_series, load
from medrecon.volume import Volume


def _truncate(path, keep_fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])


@pytest.mark.parametrize("ts", ["explicit", "rle"])
def test_io_info_refuses_a_truncated_file_like_load(tmp_path, ts):
    arr = (np.arange(32 * 32 * 4).reshape(32, 32, 4) % 300).astype(np.int16)
    files = write_dicom_series(Volume(arr, np.eye(4), {"modality": "CT"}), tmp_path / "s", transfer_syntax=ts)
    rows = describe_series(tmp_path / "s")
    assert rows[0]["is_volume"]
    _truncate(files[2])
    rows = describe_series(tmp_path / "s")
    assert not rows[0]["is_volume"] and "truncated" in rows[0]["reason"] and files[2].name in rows[0]["reason"]
    with pytest.raises(DicomError, match="truncated"):
        load(tmp_path / "s")
    r = subprocess.run([sys.executable, "-m", "medrecon", "info", str(tmp_path / "s")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "0 loadable" in r.stdout and "truncated" in r.stdout, r.stdout


@pytest.mark.realdata
def test_io_info_truncated_real_jpeg_lossless(tmp_path):
    src = shared_path("mr_brain_t1_siemens_xa30_plain_and_jpeg_lossless", "dicom_jpeg_lossless_fragmented")
    shutil.copytree(src, tmp_path / "j")
    victim = sorted(p for p in (tmp_path / "j").rglob("*") if p.is_file() and p.stat().st_size > 20000)[5]
    victim.chmod(0o644)
    _truncate(victim, 0.97)
    rows = [r for r in describe_series(tmp_path / "j") if r.get("kind") != "non-image"]
    assert len(rows) == 1 and not rows[0]["is_volume"] and "truncated" in rows[0]["reason"]
