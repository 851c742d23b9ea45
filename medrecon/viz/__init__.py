"""Looking at results: 3D previews (:mod:`.preview`), the QC montage (:mod:`.montage`) and the offline
HTML viewer (:mod:`.html`). Terminal tables and progress bars are the CLI's (:mod:`medrecon.cli_display`)."""
