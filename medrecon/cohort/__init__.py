"""Cohort processing: many studies, one command, resumable, on Dask distributed.

>>> from medrecon import cohort
>>> res = cohort.run("studies/", "out/", config="configs/ct-bone-print.yaml", workers=4)
>>> res.counts, res.failures

See ``docs/cohort.md``. Modules: :mod:`~medrecon.cohort.config` (recipes),
:mod:`~medrecon.cohort.discover` (studies, fingerprints), :mod:`~medrecon.cohort.manifest`
(SQLite state), :mod:`~medrecon.cohort.tasks` (worker functions), :mod:`~medrecon.cohort.runner`
(driver), :mod:`~medrecon.cohort.summary` (CSV/HTML/plot), :mod:`~medrecon.cohort.progress`.
Dask is imported only when a run actually computes something.
"""
from __future__ import annotations

from medrecon.cohort.config import Recipe, list_recipes, load_recipe
from medrecon.cohort.discover import Study, discover
from medrecon.cohort.progress import ProgressEvent, json_printer, plain_printer
from medrecon.cohort.runner import CohortResult, parse_duration, parse_gpus, run

__all__ = ["run", "CohortResult", "Recipe", "load_recipe", "list_recipes", "Study", "discover", "ProgressEvent",
           "plain_printer", "json_printer", "parse_duration", "parse_gpus"]
