"""Fixtures of the cohort tests: a small cohort of synthetic studies (DICOM and NIfTI phantoms),
one corrupt study and one real CT series from ../shared/data (linked, not copied)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REAL_CT = ("ct_abdomen_totalsegmentator_refseg", "example_ct_dicom")
GOOD_SYNTHETIC = ["dcm_r14", "dcm_r18", "nii_r12", "nii_r16", "nii_r20"]


def _write_cohort(root: Path) -> None:
    from medrecon.io.dicom.write import write_dicom_series
    from medrecon.io.volumes import save_volume
    from medrecon.phantoms import sphere_phantom

    root.mkdir(parents=True)
    for name in GOOD_SYNTHETIC:
        r = float(name.split("_r")[1])
        vol = sphere_phantom(radius=r, spacing=(2.0, 2.0, 2.0), supersample=2).volume
        d = root / name
        d.mkdir()
        if name.startswith("dcm"):
            write_dicom_series(vol, d, series_description="cohort test phantom")
        else:
            save_volume(vol, d / "image.nii.gz")
    # corrupt: a DICOM series whose files were truncated (pixel data cut off)
    bad = root / "corrupt"
    files = write_dicom_series(sphere_phantom(radius=10, spacing=(2.0, 2.0, 2.0), supersample=2).volume, bad)
    for f in files:
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 3])


@pytest.fixture(scope="session")
def cohort_template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cohort_tpl") / "studies"
    _write_cohort(root)
    return root


@pytest.fixture
def cohort_dir(cohort_template, tmp_path, shared_data) -> Path:
    """A fresh copy of the synthetic cohort plus a link to the real CT series (study ``a_real``)."""
    root = tmp_path / "studies"
    shutil.copytree(cohort_template, root)
    os.symlink(shared_data(*REAL_CT), root / "a_real")
    return root


@pytest.fixture
def small_cohort(cohort_template, tmp_path) -> Path:
    """Only the synthetic studies (no real one): for fast runs."""
    root = tmp_path / "small"
    shutil.copytree(cohort_template, root)
    return root


@pytest.fixture
def recipe(tmp_path) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text("recipe: test-bone\nmesh:\n  preset: ct-bone\n  formats: [stl]\n  preview: false\n")
    return p


@pytest.fixture
def good_synthetic() -> list[str]:
    """Ids of the synthetic studies that must end ``done``."""
    return list(GOOD_SYNTHETIC)
