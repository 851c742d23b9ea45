"""Run the Khronos glTF validator (npm ``gltf-validator``) on GLB/glTF files from tests.

The validator is installed by ``scripts/install_node_tools.sh`` into ``.node/`` (``./dev test``
runs it). Usage::

    from helpers_gltf import validate_gltf, assert_valid_gltf   # tests/ is on sys.path (conftest)
    report = validate_gltf(path)          # the validator's JSON report (dict)
    assert_valid_gltf(path)               # fails the test on any error, with the messages

``assert_valid_gltf`` fails (never skips) when node or the validator is missing, with the
command that installs it, so CI cannot silently pass without validating.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = Path(os.environ.get("MEDRECON_NODE_DIR", ROOT / ".node"))

_SCRIPT = r"""
const fs = require('fs');
const path = require('path');
const validator = require(process.env.MEDRECON_GLTF_VALIDATOR);
const file = process.env.MEDRECON_GLTF_FILE;
const data = new Uint8Array(fs.readFileSync(file));
const dir = path.dirname(file);
validator.validateBytes(data, {
  uri: path.basename(file),
  maxIssues: 200,
  externalResourceFunction: (uri) => new Promise((resolve, reject) => {
    fs.readFile(path.join(dir, decodeURIComponent(uri)), (err, d) => err ? reject(err.toString()) : resolve(new Uint8Array(d)));
  }),
}).then((report) => { process.stdout.write(JSON.stringify(report)); })
  .catch((err) => { process.stderr.write(String(err)); process.exit(3); });
"""


def validator_path() -> Path:
    return NODE_DIR / "node_modules" / "gltf-validator"


def validator_available() -> bool:
    return shutil.which("node") is not None and (validator_path() / "package.json").is_file()


def validate_gltf(path: str | os.PathLike, timeout: float = 120.0) -> dict:
    """The validator's report for one ``.glb`` / ``.gltf`` file (``report["issues"]["numErrors"]`` ...).

    Raises
    ------
    RuntimeError
        node or the validator is missing (run ``bash scripts/install_node_tools.sh``), or it crashed.
    """
    if not validator_available():
        raise RuntimeError("Khronos glTF validator not installed: run `bash scripts/install_node_tools.sh` "
                           f"(needs node + npm; expected {validator_path()})")
    env = dict(os.environ, MEDRECON_GLTF_VALIDATOR=str(validator_path()),
               MEDRECON_GLTF_FILE=str(Path(path).resolve()))
    proc = subprocess.run(["node", "-e", _SCRIPT], capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"gltf-validator failed on {path}: {proc.stderr.strip()[:500]}")
    return json.loads(proc.stdout)


def gltf_messages(report: dict, severity: int = 0) -> list[str]:
    """``code: message (pointer)`` for every issue at ``severity`` (0 error, 1 warning, 2 info, 3 hint)."""
    return [f"{m.get('code')}: {m.get('message')} ({m.get('pointer', '')})"
            for m in report.get("issues", {}).get("messages", []) if m.get("severity") == severity]


def assert_valid_gltf(path: str | os.PathLike, max_warnings: int | None = None) -> dict:
    """Fail unless the validator reports zero errors (and at most ``max_warnings`` warnings)."""
    report = validate_gltf(path)
    issues = report.get("issues", {})
    errors = gltf_messages(report, 0)
    assert issues.get("numErrors", 0) == 0, f"{path}: {issues.get('numErrors')} glTF errors: {errors[:10]}"
    if max_warnings is not None:
        assert issues.get("numWarnings", 0) <= max_warnings, \
            f"{path}: {issues.get('numWarnings')} glTF warnings: {gltf_messages(report, 1)[:10]}"
    return report
