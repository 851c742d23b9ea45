"""Process a small cohort with medrecon.cohort: write N synthetic CT studies (sphere phantoms as
NIfTI, plus one corrupt study), run them on a local Dask cluster, run again to show resume, and
print where the summary is.

    .venv/bin/python examples/cohort_run.py -o cohort-demo --studies 6 --workers 2

The same run from the command line: ``medrecon cohort cohort-demo/studies -o cohort-demo/out``.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def make_studies(root: Path, n: int) -> None:
    """``n`` sphere phantoms of different sizes (CT, HU) and one unreadable study."""
    from medrecon.io.volumes import save_volume
    from medrecon.phantoms import sphere_phantom

    for i in range(n):
        d = root / f"study_{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        radius = 15.0 + 3.0 * i if i != n - 1 else 40.0  # the last one is an outlier on purpose
        save_volume(sphere_phantom(radius=radius, spacing=(2.0, 2.0, 2.0), supersample=2).volume, d / "ct.nii.gz")
    bad = root / "study_corrupt"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "ct.nii.gz").write_bytes(b"this is not an image")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--outdir", type=Path, default=Path("cohort-demo"), help="folder for studies/ and out/")
    ap.add_argument("--studies", type=int, default=6, help="number of synthetic studies (default 6)")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2)")
    ap.add_argument("--config", default=None, help="recipe YAML or name in configs/ (default: ct-bone, STL)")
    args = ap.parse_args(argv)

    from medrecon import cohort

    studies, out = args.outdir / "studies", args.outdir / "out"
    make_studies(studies, args.studies)
    res = cohort.run(studies, out, config=args.config, workers=args.workers, dashboard=False,
                     progress=cohort.plain_printer())
    print(f"first run: {res.counts['done']} done, {res.counts['failed']} failed in {res.elapsed_s:.1f} s")
    for sid, why in res.failures.items():
        print(f"  failed {sid}: {why}")
    again = cohort.run(studies, out, config=args.config, workers=args.workers, dashboard=False)
    print(f"second run (resume): {again.counts['skipped']} skipped, {again.counts['run']} computed "
          f"in {again.elapsed_s:.1f} s")
    print(f"summary: {res.summary_csv}\nreport:  {res.report_html}\nplot:    {res.plot_png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
