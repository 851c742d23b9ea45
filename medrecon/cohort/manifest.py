"""The cohort manifest: one SQLite file (``OUTDIR/cohort.sqlite``) that remembers every study.

Table ``studies`` (one row per study id):

=================  ==================================================================
column             meaning
=================  ==================================================================
study_id           the study's id (its output folder is ``OUTDIR/studies/<study_id>``)
status             ``pending``, ``running``, ``done`` or ``failed``
fingerprint        input fingerprint (size + mtime of every input file, hashed)
config_hash        hash of the effective mesh settings
medrecon_version   version that produced the outputs
attempts           times the study was handed to the cluster
computed           times the study was computed to the end (1 for a study done once)
run_id             the run that last touched the study
started_utc        when the last attempt was handed out (ISO 8601, UTC)
finished_utc       when it finished or failed
timings_json       per-stage seconds (JSON object)
warnings_json      warnings (JSON list)
error              one-line reason of a failure
summary_json       per-structure measures (JSON list) for the summary CSV/HTML
=================  ==================================================================

Table ``runs`` records each run (id, start, end, counts). Only the process that drives the run
writes the file (workers never do), in WAL mode, one commit per finished study.
"""
from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Manifest", "MANIFEST_NAME", "utcnow"]

MANIFEST_NAME = "cohort.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_id TEXT PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'pending',
    fingerprint TEXT,
    config_hash TEXT,
    medrecon_version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    computed INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    started_utc TEXT,
    finished_utc TEXT,
    timings_json TEXT,
    warnings_json TEXT,
    error TEXT,
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_utc TEXT,
    finished_utc TEXT,
    medrecon_version TEXT,
    settings_json TEXT,
    counts_json TEXT
);
"""
_COLS = ("study_id", "status", "fingerprint", "config_hash", "medrecon_version", "attempts", "computed", "run_id",
         "started_utc", "finished_utc", "timings_json", "warnings_json", "error", "summary_json")


def utcnow() -> str:
    """Current UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Manifest:
    """The SQLite manifest of one output folder.

    Parameters
    ----------
    path : the ``.sqlite`` file (created with its tables when absent, unless ``readonly``).
    readonly : open without creating or writing anything (``--dry-run``).
    """

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) if self.path.exists() else None
            if self.db is not None and not self.db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='studies'").fetchone():
                self.db.close()  # a run killed before it wrote the schema: nothing was recorded
                self.db = None
            if self.db is None:
                self.db = sqlite3.connect(":memory:")
                self.db.executescript(_SCHEMA)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self.db.commit()
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- reads
    def all(self) -> dict[str, dict[str, Any]]:
        """Every row, keyed by study id (JSON columns decoded)."""
        return {r["study_id"]: self._decode(r) for r in self.db.execute("SELECT * FROM studies")}

    def get(self, study_id: str) -> dict[str, Any] | None:
        r = self.db.execute("SELECT * FROM studies WHERE study_id=?", (study_id,)).fetchone()
        return self._decode(r) if r is not None else None

    @staticmethod
    def _decode(r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        for k in ("timings_json", "warnings_json", "summary_json"):
            v = d.pop(k)
            d[k[:-5]] = json.loads(v) if v else None
        return d

    # ---------------------------------------------------------------- writes
    def mark_submitted(self, rows: Iterable[tuple[str, str, str]], run_id: str) -> None:
        """Studies handed to the cluster: ``(study_id, fingerprint, config_hash)``; status ``running``."""
        now = utcnow()
        self.db.executemany(
            "INSERT INTO studies (study_id, status, fingerprint, config_hash, attempts, run_id, started_utc) "
            "VALUES (?, 'running', ?, ?, 1, ?, ?) ON CONFLICT(study_id) DO UPDATE SET status='running', "
            "fingerprint=excluded.fingerprint, config_hash=excluded.config_hash, attempts=attempts+1, "
            "run_id=excluded.run_id, started_utc=excluded.started_utc, error=NULL",
            [(sid, fp, ch, run_id, now) for sid, fp, ch in rows])
        self.db.commit()

    def mark_done(self, study_id: str, fingerprint: str, config_hash: str, version: str, run_id: str,
                  timings: dict | None, warnings: list | None, summary: list | None, computed: int = 1,
                  finished_utc: str | None = None) -> None:
        """A finished study (``computed`` is added to the study's compute count)."""
        self.db.execute(
            "INSERT INTO studies (study_id, status, fingerprint, config_hash, medrecon_version, computed, run_id, "
            "finished_utc, timings_json, warnings_json, error, summary_json) "
            "VALUES (?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT(study_id) DO UPDATE SET status='done', "
            "fingerprint=excluded.fingerprint, config_hash=excluded.config_hash, "
            "medrecon_version=excluded.medrecon_version, computed=computed+excluded.computed, "
            "run_id=excluded.run_id, finished_utc=excluded.finished_utc, timings_json=excluded.timings_json, "
            "warnings_json=excluded.warnings_json, error=NULL, summary_json=excluded.summary_json",
            (study_id, fingerprint, config_hash, version, int(computed), run_id, finished_utc or utcnow(),
             json.dumps(timings or {}), json.dumps(warnings or []), json.dumps(summary or [])))
        self.db.commit()

    def mark_failed(self, study_id: str, fingerprint: str, config_hash: str, version: str, run_id: str,
                    error: str, timings: dict | None = None, warnings: list | None = None) -> None:
        """A failed study, with its one-line reason."""
        self.db.execute(
            "INSERT INTO studies (study_id, status, fingerprint, config_hash, medrecon_version, run_id, finished_utc, "
            "timings_json, warnings_json, error) VALUES (?, 'failed', ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(study_id) DO UPDATE SET status='failed', fingerprint=excluded.fingerprint, "
            "config_hash=excluded.config_hash, medrecon_version=excluded.medrecon_version, run_id=excluded.run_id, "
            "finished_utc=excluded.finished_utc, timings_json=excluded.timings_json, "
            "warnings_json=excluded.warnings_json, error=excluded.error",
            (study_id, fingerprint, config_hash, version, run_id, utcnow(), json.dumps(timings or {}),
             json.dumps(warnings or []), " ".join(str(error).split())))
        self.db.commit()

    def reset_running(self) -> int:
        """Studies left ``running`` by a killed run go back to ``pending``; returns how many."""
        cur = self.db.execute("UPDATE studies SET status='pending' WHERE status='running'")
        self.db.commit()
        return cur.rowcount

    def start_run(self, run_id: str, version: str, settings: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO runs (run_id, started_utc, medrecon_version, settings_json) "
                        "VALUES (?, ?, ?, ?)", (run_id, utcnow(), version, json.dumps(settings, default=str)))
        self.db.commit()

    def end_run(self, run_id: str, counts: dict) -> None:
        self.db.execute("UPDATE runs SET finished_utc=?, counts_json=? WHERE run_id=?",
                        (utcnow(), json.dumps(counts), run_id))
        self.db.commit()
