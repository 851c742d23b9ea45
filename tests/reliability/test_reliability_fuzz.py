"""Short mutation-fuzzing run over real files (../shared/data), NIfTI and NRRD: every mutant gets
success or a one-line MedreconError naming the file; no hang, no crash, bounded memory, nothing
outside the input read, the input unchanged. The long run is benchmarks/fuzz_long.py."""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rel_harness as H

pytestmark = pytest.mark.realdata


def _check(tmp_path, family, seed):
    rnd = random.Random(seed)
    target, folder, desc = H.make_mutant(rnd, tmp_path, family)
    try:
        out = H.run_one(target, folder, timeout=40)
    finally:
        H.cleanup(folder)
    assert out.status in H.GOOD, f"{desc}: {out.status}: {out.detail} {out.opened_outside}"


@settings(max_examples=35, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.slow  # measured: 6 s CPU alone (issue 22: the fast tier stays under 3 min)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_reliability_fuzz_dicom(tmp_path, seed):
    _check(tmp_path, "dicom", seed)


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), family=st.sampled_from(["nifti", "nrrd"]))
def test_reliability_fuzz_nifti_nrrd(tmp_path, seed, family):
    _check(tmp_path, family, seed)


@pytest.mark.parametrize("kind", H.MUTATIONS)
def test_reliability_every_mutation_kind(tmp_path, kind):
    """Each mutation operator at least once on a codec-compressed and a native seed."""
    for i, seed in enumerate(["dicom_transfer_syntaxes_dcm_qa_ts/dicom/9.dcm",
                              "dicom_small_singles_pydicom/from_pydicom_test_files/MR_small.dcm"]):
        rnd = random.Random(1000 + i)
        folder = tmp_path / f"{kind}{i}"
        folder.mkdir()
        src = H.DATA / seed
        data, name, desc = H.mutate(src.read_bytes(), kind, rnd, name=src.name)
        (folder / name).write_bytes(data)
        out = H.run_one(folder / name, folder, timeout=40)
        assert out.status in H.GOOD, f"{desc}: {out.status}: {out.detail} {out.opened_outside}"
