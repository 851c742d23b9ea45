"""The ``svr`` stage of a cohort recipe: a study's thick-slice stacks -> one isotropic volume.

A recipe's ``svr:`` block (see ``configs/svr-then-mesh.yaml``)::

    svr:
      stacks: "*.nii.gz"      # glob inside the study folder (sorted; at least one match)
      method: svr             # average, srr, svr, inr or single (exactly one stack)
      spacing: 1.0            # output voxel size in mm (default: the in-plane pixel size)
      mask: null              # optional glob of a mask file inside the study folder

The volume is written into the study's output folder (``svr/<study id>.nii.gz`` with its JSON
report beside it) and the recipe's ``mesh:`` settings then run on it.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medrecon.errors import InputError

__all__ = ["SVRStage", "run_svr_stage"]


class SVRStage(BaseModel):
    """Settings of the ``svr`` stage (validated when the recipe loads)."""

    model_config = ConfigDict(extra="forbid")
    stacks: str = Field("*.nii.gz", min_length=1, description="glob of the stacks inside the study folder")
    method: str = Field("svr", description="average, srr, svr, inr or single")
    spacing: Optional[float] = Field(None, gt=0.1, le=10.0, description="output voxel size (mm)")
    mask: Optional[str] = Field(None, description="glob of a mask file inside the study folder")
    device: str = Field("auto", description="auto, cpu or cuda[:N]")

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        from medrecon.svr.reconstruct import METHODS

        v = v.strip().lower()
        if v not in METHODS:
            raise ValueError(f"unknown svr method {v!r}; use one of {', '.join(METHODS)}")
        return v


def _matches(folder: Path, pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(folder / pattern)) if not Path(p).name.startswith("."))


def run_svr_stage(study_input: str | os.PathLike, stage: SVRStage | dict, outdir: str | os.PathLike, study_id: str,
                  progress: "ProgressFn | None" = None) -> Path:
    """Reconstruct the study's stacks into ``outdir/svr/<study_id>.nii.gz``; return that path.

    Raises
    ------
    InputError
        No stack matches the glob in the study folder (or the mask glob matches nothing).
    """
    from medrecon.svr import reconstruct_files

    st = stage if isinstance(stage, SVRStage) else SVRStage(**stage)
    src = Path(study_input)
    folder = src if src.is_dir() else src.parent
    stacks = _matches(folder, st.stacks)
    if st.mask:
        masks = _matches(folder, st.mask)
        if not masks:
            raise InputError(f"svr: no mask matches {st.mask!r}", folder)
        stacks = [p for p in stacks if p not in masks]
        mask = str(masks[0])
    else:
        mask = None
    if not stacks:
        raise InputError(f"svr: no stack matches {st.stacks!r}", folder)
    out = Path(outdir) / "svr" / f"{study_id}.nii.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    reconstruct_files([str(p) for p in stacks], out, method=st.method, spacing=st.spacing, mask=mask,
                      device=st.device, progress=progress)
    return out
