"""Old import path of :mod:`medrecon.io.labelmaps` (kept for callers written before the house refactor)."""
from medrecon.io.labelmaps import import_nnunet, import_totalsegmentator, read_embedded_label_table  # noqa: F401

__all__ = ["import_totalsegmentator", "import_nnunet", "read_embedded_label_table"]
