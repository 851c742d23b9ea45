"""The registry of reconstruction methods: a method is a function registered under a family
and a name, with a one-line help and (optionally) its options model. The command line (``--method``
choices and help of ``svr``, ``photo``, ``multiview``), cohort recipes and reports find methods
here; adding one is one :func:`register_method` call and a test, never an edit of ``cli.py``.

``run`` is the function that runs the method, or its ``"module:function"`` path (imported only
when the method runs, so listing methods costs nothing). A family's functions share one
signature: the family's entry point (``svr``: :func:`medrecon.svr.reconstruct_files`;
``photo``: :func:`medrecon.photo.run_photo`; ``multiview``:
:func:`medrecon.multiview.pipeline.reconstruct_multiview`), called with ``method=<name>`` for
``svr`` and the method in the options for ``photo``/``multiview``.

Examples
--------
>>> def _mine(paths, output, **kw):
...     ...
>>> m = register_method("svr", "mine", "my method (fast)", _mine)
>>> "mine" in methods("svr"), get_method("svr", "mine").help
(True, 'my method (fast)')
>>> unregister_method("svr", "mine")
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Union

from medrecon.errors import ConfigError

__all__ = ["Method", "register_method", "unregister_method", "methods", "get_method", "method_help"]


@dataclass(frozen=True)
class Method:
    """One registered method."""

    family: str
    name: str
    help: str
    run: Union[str, Callable[..., Any]]
    options: Any = None

    def function(self) -> Callable[..., Any]:
        """The function that runs the method (imported on first use)."""
        if callable(self.run):
            return self.run
        module, _, attr = str(self.run).partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, dict[str, Method]] = {}


def register_method(family: str, name: str, help: str, run: Union[str, Callable[..., Any]],
                    options: Any = None, *, replace: bool = False) -> Method:
    """Register ``name`` in ``family``; a second registration of a name needs ``replace=True``."""
    key = name.strip().lower()
    fam = _REGISTRY.setdefault(family, {})
    if key in fam and not replace:
        raise ConfigError(f"{family} method {key!r} is already registered")
    fam[key] = Method(family, key, help, run, options)
    return fam[key]


def unregister_method(family: str, name: str) -> None:
    """Remove a registered method (tests, plug-ins)."""
    _REGISTRY.get(family, {}).pop(name.strip().lower(), None)


def methods(family: str) -> dict[str, Method]:
    """The methods of ``family`` by name, in registration order."""
    return dict(_REGISTRY.get(family, {}))


def get_method(family: str, name: str) -> Method:
    """The method ``name`` of ``family``; an unknown name is a one-line :class:`ConfigError`."""
    key = str(name).strip().lower()
    fam = _REGISTRY.get(family, {})
    if key not in fam:
        raise ConfigError(f"--method {name!r}: unknown method of {family}; use one of {', '.join(fam) or '(none)'}")
    return fam[key]


def method_help(family: str) -> str:
    """``"a (what a does), b (what b does)"``: the choices of ``--method``, for help texts."""
    return ", ".join(f"{m.name} ({m.help})" for m in _REGISTRY.get(family, {}).values())


# the built-in methods (their modules are imported only when a method runs)
for _n, _h in (("average", "PSF back-projection, seconds"),
               ("srr", "edge-preserving super-resolution, no motion correction"),
               ("svr", "motion correction: stack and slice registration + robust SRR"),
               ("inr", "svr, then a neural field with pose refinement; GPU"),
               ("single", "one thick stack made isotropic by self-supervised super-resolution")):
    register_method("svr", _n, _h, "medrecon.svr:reconstruct_files")
for _n, _h in (("inflate", "rounded"), ("relief", "lithophane"), ("slab", "flat, bevelled")):
    register_method("photo", _n, _h, "medrecon.photo:run_photo")
for _n, _h in (("stereo", "plane-sweep MVS + Poisson"), ("neural", "NeuS-style SDF; meant for a GPU")):
    register_method("multiview", _n, _h, "medrecon.multiview.pipeline:reconstruct_multiview")
