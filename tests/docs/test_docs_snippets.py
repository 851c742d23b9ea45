"""Issue 17, item 3: every fenced shell and Python block of README.md and docs/*.md runs as written.

How it works
------------
* Each ```` ```bash ````, ```` ```sh ````, ```` ```console ```` (lines starting with ``$ ``) and
  ```` ```python ```` block is extracted with its file and line.
* A block preceded (directly, blank lines allowed) by ``<!-- docs-test: skip REASON -->`` is not
  run; :func:`test_skipped_blocks_are_few_and_give_a_reason` keeps that list short and reasoned.
* The blocks of one page run in order (one test per page), in one working folder that stands in
  for the repository root: ``.venv``, ``examples``, ``benchmarks``, ``configs`` are symlinks to
  the real ones, ``HOME`` is the folder too (so ``~/bundles`` works), and every placeholder the
  docs use is a real file or folder made from :data:`PLACEHOLDERS` (generated data, or the real
  scans in ``../shared/data``). Shell blocks run with ``bash -e``; ``medrecon`` and ``python``
  are the project's venv.

A new placeholder in the docs needs one line in :data:`PLACEHOLDERS`, not a new test.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGS = {"bash", "sh", "console", "python"}
SKIP_RE = re.compile(r"<!--\s*docs-test:\s*skip\b\s*(.*?)\s*-->")
#: At most this many blocks outside docs/benchmarks.md may be skipped (clusters, GPU, downloads, the
#: whole suite): a ratchet, lower it when a skip goes away. benchmarks.md records long runs on
#: named machines; its blocks are skipped with a reason each and the scripts' --help is tested.
MAX_SKIPPED = 14  # +1: docs/gpu.md's one-time wheel download for the GPU machine (benchmarks/prepare_gpu_machine.sh)

TS = "ct_abdomen_totalsegmentator_refseg"

#: Placeholder path in the docs -> where it comes from: ("shared", path under ../shared/data),
#: ("gen", generator name in _GENERATORS) or ("link", another placeholder).
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "scans/ct_folder": ("gen", "ct_dicom"),            # a real CT (3 mm) written as DICOM, SeriesNumber 2
    "scans/mixed": ("shared", "mr_philips_classic_vs_enhanced_mixed_folder"),
    "ct_folder": ("link", "scans/ct_folder"),
    "CT": ("link", "scans/ct_folder"),
    "path/to/dicom_folder": ("link", "scans/ct_folder"),
    "path/to/dicom": ("link", "scans/ct_folder"),
    "ct.nii.gz": ("shared", f"{TS}/example_ct_sm.nii.gz"),
    "seg.nii.gz": ("shared", f"{TS}/example_seg.nii.gz"),  # TotalSegmentator labels on that CT's grid
    "ts_out.nii.gz": ("shared", f"{TS}/example_seg.nii.gz"),
    "ts_out": ("shared", f"{TS}/example_seg_fast"),       # one mask per structure
    "case_001.nii.gz": ("gen", "nnunet_case"),
    "Dataset101_Bones/dataset.json": ("gen", "nnunet_dataset"),
    "bundles/spleen_ct_segmentation": ("gen", "bundle_spleen"),
    "bundles/wholeBody_ct_segmentation": ("gen", "bundle_wholebody"),
    "wholeBody_ct_segmentation": ("link", "bundles/wholeBody_ct_segmentation"),
    "from_slicer.seg.nrrd": ("gen", "seg_nrrd"),
    "ax.nii.gz": ("gen", "svr_stack0"),                   # thick-slice stacks of a small phantom
    "cor.nii.gz": ("gen", "svr_stack1"),
    "sag.nii.gz": ("gen", "svr_stack2"),
}


# --- extraction -------------------------------------------------------------------------------
def blocks(page: Path) -> list[dict]:
    """Fenced blocks of one page: ``{"page", "line", "lang", "code", "skip"}``."""
    text = page.read_text(encoding="utf-8")
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if lang in LANGS:
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            sk = SKIP_RE.search(lines[k]) if k >= 0 else None
            code = "\n".join(line[len(indent):] if line.startswith(indent) else line for line in lines[i + 1:j])
            out.append({"page": page.relative_to(ROOT).as_posix(), "line": i + 1, "lang": lang, "code": code,
                        "skip": (sk.group(1) or "(no reason)") if sk else None})
        i = j + 1
    return out


ALL = [b for p in PAGES for b in blocks(p)]


def test_extraction_finds_the_blocks():
    assert len(ALL) >= 30
    assert {b["lang"] for b in ALL} >= {"bash", "python"}


def test_skipped_blocks_are_few_and_give_a_reason():
    skipped = [b for b in ALL if b["skip"] is not None]
    for b in skipped:
        assert len(b["skip"]) >= 10 and b["skip"] != "(no reason)", f"{b['page']}:{b['line']} needs a reason"
    outside = [b for b in skipped if b["page"] != "docs/benchmarks.md"]
    assert len(outside) <= MAX_SKIPPED, [f"{b['page']}:{b['line']}" for b in outside]
    runnable = [b for b in ALL if b["skip"] is None]
    assert len(runnable) >= 15


# --- data behind the placeholders -------------------------------------------------------------
def _ct_dicom(dst: Path) -> None:
    from medrecon import load
    from medrecon.io.dicom.write import write_dicom_series

    vol = load(shared_path(TS, "example_ct_sm.nii.gz"))
    write_dicom_series(vol, dst, series_number=2, series_description="abdomen CT (docs test)")


def _nnunet_case(dst: Path) -> None:
    import nibabel as nib

    img = nib.load(str(shared_path(TS, "example_seg.nii.gz")))
    a = np.asarray(img.dataobj)
    from medrecon.io.label_tables import load_label_table

    names = {li.name: v for v, li in load_label_table("totalsegmentator").items()}
    out = np.zeros(a.shape, np.uint8)
    for new, name in enumerate(("vertebrae_L1", "vertebrae_L2", "vertebrae_T12"), 1):  # bones in this abdomen CT
        out[a == names[name]] = new
    assert out.any()
    nib.save(nib.Nifti1Image(out, img.affine), str(dst))


def _nnunet_dataset(dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps({"labels": {"background": 0, "vertebrae_L1": 1, "vertebrae_L2": 2, "vertebrae_T12": 3},
                               "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}))


def _bundle(dst: Path, names: dict[str, str]) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "segment"))
    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("docs_bundle", ROOT / "tests/segment/test_segment_ai_bundle.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
    mod.make_bundle(dst, pixdim=(3.0, 3.0, 3.0), roi=(64, 64, 32))
    meta = json.loads((dst / "configs" / "metadata.json").read_text())
    meta["network_data_format"]["outputs"]["pred"]["channel_def"] = {"0": "background", **names}
    (dst / "configs" / "metadata.json").write_text(json.dumps(meta))


def _seg_nrrd(dst: Path) -> None:
    from medrecon.io.labelmaps import import_totalsegmentator
    from medrecon.io.slicer import write_seg_nrrd

    lab, labels = import_totalsegmentator(shared_path(TS, "example_seg.nii.gz"))
    keep = {v: li for v, li in labels.items() if li.name in ("liver", "spleen", "femur_left")}
    arr = np.where(np.isin(lab.array, list(keep)), lab.array, 0)
    write_seg_nrrd(lab.with_array(arr), keep, dst)


def _svr_stack(dst: Path, k: int) -> None:
    from medrecon.io.volumes import save_volume
    from medrecon.svr import simulate_stacks
    from medrecon.volume import Volume

    i, j, kk = np.mgrid[:48, :48, :48]
    a = ((i - 24) ** 2 / 300 + (j - 24) ** 2 / 200 + (kk - 24) ** 2 / 250 < 1).astype(np.float32)
    a[(i - 24) ** 2 + (j - 20) ** 2 + (kk - 26) ** 2 < 25] = 0.5
    sim = simulate_stacks(Volume(a, np.diag([1.0, 1.0, 1.0, 1.0])), 3.0, noise_sigma=0.01, seed=0)
    save_volume(sim.stacks[k], dst)


_GENERATORS = {
    "svr_stack0": lambda d: _svr_stack(d, 0),
    "svr_stack1": lambda d: _svr_stack(d, 1),
    "svr_stack2": lambda d: _svr_stack(d, 2),
    "ct_dicom": _ct_dicom,
    "nnunet_case": _nnunet_case,
    "nnunet_dataset": _nnunet_dataset,
    "bundle_spleen": lambda d: _bundle(d, {"1": "spleen"}),
    "bundle_wholebody": lambda d: _bundle(d, {"1": "femur_left", "2": "hip_left", "3": "sacrum"}),
    "seg_nrrd": _seg_nrrd,
}


def _make_place(work: Path, name: str) -> None:
    kind, what = PLACEHOLDERS[name]
    dst = work / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        return
    if kind == "shared":
        dst.symlink_to(shared_path(*what.split("/")))
    elif kind == "link":
        _make_place(work, what)
        dst.symlink_to(work / what)
    else:
        _GENERATORS[what](dst)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("docs")
    for name in (".venv", "examples", "benchmarks", "configs", "scripts", "constraints.txt", "medrecon"):
        (work / name).symlink_to(ROOT / name)
    for name in PLACEHOLDERS:
        _make_place(work, name)
    return work


# --- running ----------------------------------------------------------------------------------
def _env(work: Path) -> dict:
    env = dict(os.environ)
    env.update(HOME=str(work), COLUMNS="80", TERM="dumb", NO_COLOR="1", MPLBACKEND="Agg", CI="true",
               PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
               VIRTUAL_ENV=str(ROOT / ".venv"), PYTHONPATH=str(ROOT))
    return env


def run_block(b: dict, work: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    code = b["code"]
    if b["lang"] == "console":
        code = "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ "))
    if b["lang"] == "python":
        script = work / f"_block_{Path(b['page']).stem}_{b['line']}.py"
        script.write_text(code + "\n")
        cmd = [str(ROOT / ".venv" / "bin" / "python"), str(script)]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    # own process group: anything a block leaves running (a server started with &) is ended with it
    p = subprocess.Popen(cmd, cwd=work, env=_env(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", f"timed out after {timeout} s"
    finally:
        try:
            os.killpg(p.pid, 9)
        except ProcessLookupError:
            pass
        p.wait()
    return subprocess.CompletedProcess(cmd, p.returncode if err != f"timed out after {timeout} s" else 124, out, err)


PAGES_WITH_BLOCKS = sorted({b["page"] for b in ALL if b["skip"] is None})


#: Pages whose blocks take long to run (measured CPU s, issue 22): in the full suite, not the fast tier.
_SLOW_PAGES = {"README.md": 30, "docs/ai-segmentation.md": 38, "docs/slicer.md": 11, "docs/user-guide.md": 9}


@pytest.mark.parametrize("page", [pytest.param(p, marks=pytest.mark.slow) if p in _SLOW_PAGES else p
                                  for p in PAGES_WITH_BLOCKS])
def test_page_snippets_run(page, workdir):
    failures = []
    for b in [b for b in ALL if b["page"] == page and b["skip"] is None]:
        r = run_block(b, workdir)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-6:]
            failures.append(f"{b['page']}:{b['line']} ({b['lang']}) exit {r.returncode}:\n    " + "\n    ".join(tail))
        elif "not closed (not printable" in r.stderr + r.stdout:  # no example may write a broken file
            bad = [ln for ln in (r.stderr + r.stdout).splitlines() if "not closed" in ln]
            failures.append(f"{b['page']}:{b['line']} wrote a surface that is not closed: {bad[0][:300]}")
    assert not failures, "\n".join(failures)
