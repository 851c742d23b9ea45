"""Segmentation: sources that turn an image into a label map (:mod:`.sources`: presets, label-map
files, MONAI bundles via :mod:`.ai`), structure selection (:mod:`.labels`), clean-up in mm (:mod:`.cleanup`)."""
