"""Provenance shared by every command that writes models or images: what made a file, from what.

A provenance record never holds patient identifiers: inputs are named by their base name and
fingerprinted by SHA-256; settings that are paths are recorded by a hash (a folder name may be
a patient's name, see :func:`path_token`); voxel data by the SHA-256 of the array
(:func:`input_fingerprint`).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from medrecon.version import __version__, generator
from medrecon.volume import Volume

__all__ = ["provenance_record", "jsonable", "input_fingerprint", "path_token",
           "file_sha256", "utc_now", "spec_name"]


def jsonable(x: Any) -> Any:
    """A JSON-able copy of ``x``: numpy scalars/arrays to Python, paths to strings, tuples to
    lists, non-finite floats to None, dataclass-like objects left as they are."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        x = float(x)
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def utc_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def path_token(p: str | os.PathLike | None) -> str | None:
    """``"sha256:<16 hex>"`` of the resolved path: records *which* path without naming it."""
    if p is None:
        return None
    return "sha256:" + hashlib.sha256(str(Path(p).resolve()).encode()).hexdigest()[:16]


def spec_name(spec: str | os.PathLike | None) -> str | None:
    """How a setting that may be a file is recorded: a file's base name, else the text as given
    (a built-in name such as ``ct-bone``)."""
    if spec is None:
        return None
    p = Path(spec)
    return p.name if p.exists() else str(spec)


def input_fingerprint(volume: Volume) -> dict[str, Any]:
    """SHA-256 of the voxel data (C order, native dtype) with shape and dtype; no identifiers."""
    arr = np.ascontiguousarray(volume.array)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
    h.update(memoryview(arr).cast("B"))
    return {"sha256": h.hexdigest(), "shape": list(arr.shape), "dtype": str(arr.dtype)}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes; a folder hashes its files' names and bytes in sorted order."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            while True:
                block = fh.read(chunk)
                if not block:
                    break
                h.update(block)
    return h.hexdigest()


def _input_entry(item: Any, n: int) -> dict[str, Any]:
    if isinstance(item, (bytes, bytearray, memoryview)):
        return {"name": f"input_{n}", "sha256": hashlib.sha256(bytes(item)).hexdigest()}
    if isinstance(item, Volume):
        return {"name": f"volume_{n}", **input_fingerprint(item)}
    p = Path(item)
    entry: dict[str, Any] = {"name": p.name}
    if p.exists():
        entry["sha256"] = file_sha256(p)
    return entry


def provenance_record(command: str, parameters: dict | None = None,
                      inputs: Iterable[str | os.PathLike | bytes | Volume] | None = None,
                      extra: dict | None = None) -> dict[str, Any]:
    """What made an output: medrecon version, command, parameters, input fingerprints, time.

    Parameters
    ----------
    command : str
        The command or library entry point (``"mesh"``, ``"svr"``...).
    parameters : dict, optional
        Settings; made JSON-able. Callers hash settings that are paths (:func:`path_token`).
    inputs : iterable of paths, bytes or Volumes, optional
        Recorded as ``{"name": basename, "sha256": ...}`` (a Volume: its voxel fingerprint).
    extra : dict, optional
        More JSON-able facts, merged in last.

    Returns
    -------
    dict with ``generator``, ``medrecon_version``, ``command``, ``parameters``, ``inputs``,
    ``created_utc``, ``python``, ``platform`` (+ ``extra``'s keys).
    """
    rec: dict[str, Any] = {
        "generator": generator(),
        "medrecon_version": __version__,
        "command": str(command),
        "parameters": jsonable(dict(parameters or {})),
        "inputs": [_input_entry(x, n) for n, x in enumerate(inputs or [])],
        "created_utc": utc_now(),
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
    }
    if extra:
        rec.update(jsonable(dict(extra)))
    return rec


# --------------------------------------------------------------------------- C2PA (multiview)
# Content Credentials with c2pa-python, signed with the user's own key and certificate chain
# (PEM). PNG/JPEG are signed with the manifest embedded. C2PA has no binding for glTF/GLB, so a
# model file gets a detached manifest (``<file>.c2pa``) that is hard-bound to a PNG it ships with
# (the preview or the texture) and names the model file's SHA-256 in a custom assertion
# (``org.medrecon.outputs``): a soft binding, stated as such in the assertion.

C2PA_SOURCE_TYPES = {
    "capture": "http://cv.iptc.org/newscodes/digitalsourcetype/compositeCapture",
    "algorithmic": "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicMedia",
    "trained": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
}


def c2pa_manifest(record: dict, title: str, mime: str, source_type: str = "capture",
                  outputs: dict | None = None) -> dict[str, Any]:
    """C2PA manifest definition: a ``c2pa.created`` action with a digital source type, the
    provenance ``record`` as ``org.medrecon.provenance``, and ``outputs`` (name -> sha256) as
    ``org.medrecon.outputs``."""
    assertions = [
        {"label": "c2pa.actions.v2", "data": {"actions": [{
            "action": "c2pa.created",
            "digitalSourceType": C2PA_SOURCE_TYPES.get(source_type, source_type),
            "softwareAgent": {"name": "medrecon", "version": __version__}}]}},
        {"label": "org.medrecon.provenance", "data": jsonable(record)},
    ]
    if outputs:
        assertions.append({"label": "org.medrecon.outputs", "data": {
            "binding": "sha256 of files that C2PA cannot embed in (soft binding)", "files": dict(outputs)}})
    return {"claim_generator_info": [{"name": "medrecon", "version": __version__}], "title": title,
            "format": mime, "assertions": assertions}


def _c2pa_signer(key: str | os.PathLike, cert: str | os.PathLike):
    import c2pa

    from medrecon.errors import InputError

    try:
        key_pem = Path(key).read_bytes()
        cert_pem = Path(cert).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read signing key/certificate ({e.strerror})", path=e.filename) from None
    alg = b"es256"
    try:  # pick the algorithm from the key type
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        k = serialization.load_pem_private_key(key_pem, password=None)
        if isinstance(k, ec.EllipticCurvePrivateKey):
            alg = {256: b"es256", 384: b"es384", 521: b"es512"}.get(k.curve.key_size, b"es256")
        elif isinstance(k, rsa.RSAPrivateKey):
            alg = b"ps256"
        elif isinstance(k, ed25519.Ed25519PrivateKey):
            alg = b"ed25519"
    except Exception as e:  # noqa: BLE001 - report an unreadable key as an input error
        raise InputError(f"signing key is not a readable PEM private key ({e})", path=key) from None
    info = c2pa.C2paSignerInfo(alg=alg, sign_cert=cert_pem, private_key=key_pem, ta_url=None)
    return c2pa.Signer.from_info(info)


def c2pa_sign_file(src: str | os.PathLike, dst: str | os.PathLike, manifest: dict, key: str | os.PathLike,
                   cert: str | os.PathLike, *, sidecar: str | os.PathLike | None = None) -> Path:
    """Sign ``src`` (PNG/JPEG/...) into ``dst`` with the manifest embedded; with ``sidecar`` the
    manifest is not embedded but written there (``dst`` is then a plain copy). Returns the path
    holding the manifest."""
    import io
    import json

    import c2pa

    from medrecon.io.atomic import atomic_write_bytes

    mime = manifest.get("format", "image/png")
    signer = _c2pa_signer(key, cert)
    data = Path(src).read_bytes()
    builder = c2pa.Builder(json.dumps(manifest))
    if sidecar is not None:
        builder.set_no_embed()
    out = io.BytesIO()
    manifest_bytes = builder.sign(signer, mime, io.BytesIO(data), out)
    if sidecar is not None:
        if Path(dst) != Path(src):
            atomic_write_bytes(dst, data)
        return atomic_write_bytes(sidecar, bytes(manifest_bytes))
    return atomic_write_bytes(dst, out.getvalue())


def c2pa_read(path: str | os.PathLike, sidecar: str | os.PathLike | None = None, mime: str = "image/png") -> dict[str, Any]:
    """Read a C2PA manifest store back: ``{"validation_state", "validation_status" (codes),
    "manifest" (active manifest dict)}``. With ``sidecar``, ``path`` is the asset it binds."""
    import io
    import json

    import c2pa

    data = Path(path).read_bytes()
    if sidecar is not None:
        r = c2pa.Reader(mime, io.BytesIO(data), Path(sidecar).read_bytes())
    else:
        r = c2pa.Reader(mime, io.BytesIO(data))
    try:
        store = json.loads(r.json())
        state = r.get_validation_state()
        active = store.get("manifests", {}).get(store.get("active_manifest"), {})
        codes = [s.get("code") for s in store.get("validation_status", []) or []]
        res = r.get_validation_results() if hasattr(r, "get_validation_results") else None
        if res:
            for bucket in (res.get("activeManifest") or {}).values():
                if isinstance(bucket, list):
                    codes += [s.get("code") for s in bucket if isinstance(s, dict)]
        return {"validation_state": state, "validation_status": codes, "manifest": active}
    finally:
        r.close()


def c2pa_sign_outputs(files: dict, record: dict, key: str | os.PathLike, cert: str | os.PathLike,
                      source_type: str = "capture") -> dict[str, Path]:
    """Sign a command's outputs: the preview PNG gets an embedded manifest naming every model
    file's SHA-256; a GLB gets a detached ``<file>.c2pa`` manifest bound to the texture PNG
    (``files["texture_png"]``) and naming the GLB's SHA-256. ``files`` maps keys to paths (as in
    a report). Returns the new files (key -> path)."""
    out: dict[str, Path] = {}
    models = {k: Path(p) for k, p in files.items() if Path(p).suffix.lower() in (".glb", ".usdz", ".stl", ".ply", ".obj")}
    hashes = {p.name: file_sha256(p) for p in models.values()}
    # the sidecars bind to a PNG that is not re-written afterwards (the texture); embedding a
    # manifest into a PNG changes its bytes, so the preview is signed in place only after that
    bound = files.get("texture_png") or (None if files.get("preview_png") else None)
    if bound is None and not files.get("preview_png"):
        from medrecon.errors import InputError

        raise InputError("C2PA signing needs a PNG output (preview or texture) to bind the manifest to")
    if bound is not None:
        bound = Path(bound)
        for k, p in models.items():
            if p.suffix.lower() != ".glb":
                continue
            m = c2pa_manifest(record, p.name, "image/png", source_type, {p.name: hashes[p.name]})
            out[f"{k}_c2pa"] = c2pa_sign_file(bound, bound, m, key, cert, sidecar=p.with_name(p.name + ".c2pa"))
    if files.get("preview_png"):
        png = Path(files["preview_png"])
        m = c2pa_manifest(record, png.name, "image/png", source_type, hashes)
        out["preview_png_c2pa"] = c2pa_sign_file(png, png, m, key, cert)
    return out
