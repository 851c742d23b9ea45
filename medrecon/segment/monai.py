"""Old import path of :mod:`medrecon.segment.ai` (kept for callers written before the house refactor).

Import :mod:`medrecon.segment.ai`: this module's name reads like the ``monai`` package."""
from medrecon.segment.ai import (labels_from_channel_def, segment_to_file, segment_volume,  # noqa: F401
                                 to_metatensor)

__all__ = ["segment_volume", "segment_to_file", "labels_from_channel_def", "to_metatensor"]
