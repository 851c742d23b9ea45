"""Old import path of :mod:`medrecon.io.dicom.write` (kept for callers written before the house refactor)."""
from medrecon.io.dicom.write import TRANSFER_SYNTAXES, rescale_for, series_files, write_dicom_series  # noqa: F401

__all__ = ["write_dicom_series", "TRANSFER_SYNTAXES", "rescale_for", "series_files"]
