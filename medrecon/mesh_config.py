"""The settings of ``medrecon mesh``, declared once: :class:`MeshConfig`.

Each field carries its type, default and help; the ``mesh`` command's options are built from it
(:mod:`medrecon.cli_options`), ``--config`` recipes are validated by it and the user guide's
table of every ``mesh`` option is generated from it (``scripts/gen_option_tables.py``). This
module imports only pydantic at import time, so building the command line stays fast; the
pipeline (:mod:`medrecon.mesh_pipeline`) runs a config.

Examples
--------
>>> cfg = MeshConfig(input="ct/", outdir="out", preset="ct-bone", formats="stl,3mf")
>>> cfg.formats, cfg.smoothing
(['stl', '3mf'], 0.5)
"""
from __future__ import annotations

from typing import Any, List, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from medrecon.errors import ConfigError, MeshError, validation_message
from medrecon.options import device_option, option, series_option

__all__ = ["MeshConfig"]


class MeshConfig(BaseModel):
    """Every setting of ``medrecon mesh`` (validated; bad values raise :class:`ConfigError`).

    Exactly one segmentation source: ``preset``, ``threshold``, ``labels`` or ``bundle``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    input: str = option(..., "DICOM folder/zip, NIfTI or NRRD volume.", argument=True, path=True, min_length=1)
    outdir: str = option(..., "Output folder.", short="-o", path=True, min_length=1)
    preset: Optional[str] = option(None, "HU/intensity preset: a name (ct-bone, ct-teeth, ...; `medrecon mesh --help` lists "
                                 "them) or a preset YAML file.")
    threshold: Optional[str] = option(None, "Custom LOW:HIGH threshold.")
    labels: Optional[str] = option(None, "Label map to mesh: NIfTI/NRRD, .seg.nrrd, a TotalSegmentator output folder "
                                   "(one mask per structure), DICOM SEG or RTSTRUCT (contours rasterised on the "
                                   "image grid).", path=True)
    label_table: Optional[str] = option(None, "Label table: built-in 'totalsegmentator', a Slicer .ctbl/.txt, CSV, "
                                        "JSON or nnU-Net dataset.json file.")
    bundle: Optional[str] = option(None, "MONAI bundle folder to segment with.", path=True)
    group: Optional[str] = option(None, "Structure group of the label table, with --labels or --bundle (bones, "
                                  "organs, ...; `medrecon mesh --help` lists them).")
    device: str = device_option()
    compile: bool = option(False, "--bundle on a GPU: torch.compile the network (about twice as fast; the first run "
                           "on a machine compiles for 20-30 s, later runs load the kernels from TorchInductor's "
                           "on-disk cache, docs/gpu.md).", flags="--compile/--no-compile")
    structures: Optional[List[str]] = option(None, "Comma list of label values or names of the label table (e.g. 1,2 "
                                             "or femur_left,hip_left); checked before any inference.", sep=",")
    formats: List[str] = option(None, "Comma list of mesh formats (stl, 3mf, glb, ...; `medrecon mesh --help` "
                                "lists them).", sep=",",
                                default_factory=lambda: ["stl"])
    smoothing: float = option(0.5, "Slicer smoothing factor 0..1.", ge=0.0, le=1.0)
    reduction: float = option(0.0, "Decimation: fraction of triangles removed (0..0.99).", ge=0.0, lt=1.0)
    space: Literal["LPS", "RAS"] = option("LPS", "Coordinate space of written meshes: LPS or RAS.")
    min_component_mm3: Optional[float] = option(None, "Drop components smaller than this (mm3).", ge=0.0)
    largest: bool = option(False, "Keep only the largest connected component (drops every separate piece: ribs, "
                           "femurs... on a CT; prefer --remove-table).")
    remove_table: bool = option(False, "CT presets: drop the scanner table (flat pieces outside the body, found by "
                                "the air around them); every bone piece stays.")
    joint: bool = option(False, "Joint multi-label meshing (surface nets, shared boundaries).")
    keep_volume: bool = option(False, "After smoothing, move every vertex outward along its normal by one common "
                               "distance so the enclosed volume matches the voxels (no rescale).")
    series: Optional[str] = series_option()
    slicer: bool = option(False, "Also write a 3D Slicer scene (.mrml) with volume, segmentation and models.")
    preview: bool = option(True, "Write PNG previews and the HTML viewer (--no-preview skips them).",
                           flags="--preview/--no-preview")
    subvoxel: bool = option(True, "Presets/thresholds: surface on the image's partial-volume iso-surface (default) "
                            "or on the binary mask, as Slicer does.", flags="--subvoxel/--binary-surface")
    exclude: Optional[List[str]] = option(None, "Comma list of presets taken out of this structure (e.g. ct-teeth out "
                                          "of ct-bone), so solids are disjoint.", sep=",")
    obj_axes: Literal["LPS", "YUP"] = option("LPS", "OBJ axes: LPS (3D Slicer) or YUP (Blender and other Y-up "
                                             "tools).")
    keep_identifiers: bool = option(False, "Opt in: the patient's identifiers in report.json ('patient'), in file "
                                    "names (PatientID_structure) and in mesh headers (GLB, 3MF, VTP); default: none "
                                    "anywhere.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError("invalid mesh settings: " + validation_message(exc)) from None

    @field_validator("formats", mode="before")
    @classmethod
    def _formats(cls, v):
        from medrecon.io.meshes import parse_formats

        try:
            return parse_formats(v)
        except MeshError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("space", "obj_axes", mode="before")
    @classmethod
    def _space(cls, v):
        return str(v).strip().upper().replace("-", "")

    @field_validator("series", mode="before")
    @classmethod
    def _series(cls, v):
        return None if v is None else str(v)

    @model_validator(mode="after")
    def _one_source(self):
        sources = [n for n in ("preset", "threshold", "labels", "bundle") if getattr(self, n)]
        if len(sources) != 1:
            given = f" (got {', '.join('--' + s for s in sources)})" if sources else ""
            raise ValueError(f"give exactly one of --preset, --threshold, --labels, --bundle{given}")
        if sources[0] in ("preset", "threshold") and (self.structures or self.group or self.label_table):
            raise ValueError("--structures, --group and --label-table apply to --labels or --bundle, "
                             "not to a preset or threshold")
        if self.remove_table and sources[0] not in ("preset", "threshold"):
            raise ValueError("--remove-table applies to --preset or --threshold (a CT's intensities)")
        if self.joint and (self.reduction > 0 or self.keep_volume):  # refused, never silently ignored
            raise ValueError("--joint keeps the shared boundaries whole, so it does not decimate or restore volume: "
                             "drop --reduction/--keep-volume, or drop --joint (joint surfaces are for viewing, "
                             "not printing)")
        if self.threshold:
            from medrecon.segment.presets import parse_threshold

            try:
                parse_threshold(self.threshold)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    @classmethod
    def build(cls, **kwargs) -> "MeshConfig":
        """Construct (same as ``MeshConfig(**kwargs)``; errors are :class:`ConfigError`)."""
        return cls(**kwargs)
