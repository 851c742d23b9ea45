"""Class 8 (many small files): the fast header reader gives the same frame headers as pydicom on
every DICOM file of ../shared/data (and on the synthetic cases), or steps aside."""
from __future__ import annotations

import dataclasses
import gzip
import io

import numpy as np
import pytest

from conftest import SHARED_DATA, shared_path
import importlib

scanmod = importlib.import_module("medrecon.io.dicom.scan")
from medrecon.io.dicom.headers import headers_from_dataset
from medrecon.io.dicom.source import Source

pytestmark = pytest.mark.realdata


def _frames(path, fast: bool):
    old = scanmod.FAST_HEADERS
    scanmod.FAST_HEADERS = fast
    try:
        return scanmod.read_headers(Source(str(path)))
    finally:
        scanmod.FAST_HEADERS = old


def _same(a, b, where):
    assert len(a) == len(b), where
    for fa, fb in zip(a, b):
        for f in dataclasses.fields(fa):
            va, vb = getattr(fa, f.name), getattr(fb, f.name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert (va is None) == (vb is None) and (va is None or np.array_equal(va, vb)), (where, f.name)
            elif f.name == "extra":
                assert va.keys() == vb.keys(), where
                for k in va:
                    x, y = va[k], vb[k]
                    if isinstance(x, tuple) and x and isinstance(x[1], np.ndarray):
                        assert x[0] == y[0] and np.allclose(x[1], y[1]), (where, k)
                    else:
                        assert x == y, (where, k, x, y)
            else:
                assert va == vb, (where, f.name, va, vb)


def test_fast_headers_equal_pydicom_on_all_shared_dicom():
    shared_path("dicom_small_singles_pydicom")
    files = [p for p in sorted(SHARED_DATA.rglob("*")) if p.is_file() and not p.name.endswith(
        (".nii.gz", ".json", ".txt", ".png", ".md", "SHA256SUMS", "LICENSE", ".gz")) and "photos" not in str(p)]
    n_fast = 0
    from medrecon.io.dicom.fastparse import fast_read_header

    for p in files:
        a = _frames(p, fast=True)
        b = _frames(p, fast=False)
        assert a[1] == b[1], p
        _same(a[0], b[0], p)
        with open(p, "rb") as fh:
            n_fast += fast_read_header(fh, 0) is not None
    assert n_fast > 300  # the fast path is really taken for most files
