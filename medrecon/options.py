"""Options declared once: a command's settings are a typed model whose fields carry the type,
the default and the help; the command line is built from them (``medrecon.cli_options``), and
so are the user guide's option tables and the check of ``--config`` recipes.

:func:`option` is ``pydantic.Field`` with what the command line needs besides (the flag's
spelling, a comma-separated list, a path). Options shared by several commands are declared
here once, with one help text: :func:`device_option`, :func:`series_option`.

Examples
--------
>>> from pydantic import BaseModel
>>> class Smooth(BaseModel):
...     iterations: int = option(10, "Smoothing passes.")
...     formats: list = option(["stl"], "Comma list of formats.", sep=",")
>>> Smooth.model_fields["iterations"].description
'Smoothing passes.'
>>> cli_meta(Smooth.model_fields["formats"])["sep"]
','
>>> import dataclasses
>>> @dataclasses.dataclass
... class Carve:
...     depth: float = dataclass_option(2.0, "Depth, mm.")
...     seed: int = 0                       # not on the command line
>>> [(f.name, cli_meta(f), field_help(f)) for f in dataclasses.fields(Carve)]
[('depth', {}, 'Depth, mm.'), ('seed', None, '')]
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = ["option", "dataclass_option", "cli_meta", "field_help", "device_option", "series_option", "DEVICE_HELP",
           "SERIES_HELP"]

#: The one help text of ``--device`` (the rule itself: :func:`medrecon.devices.resolve_device`).
DEVICE_HELP = "auto, cpu, cuda or cuda:N: where PyTorch work runs (auto: the GPU when PyTorch sees one)."
#: The one help text of ``--series`` (every command that reads a DICOM folder takes it).
SERIES_HELP = ("Series when the input holds several: its SeriesNumber, or '#N' for the index shown by "
               "`medrecon info`.")


def option(default: Any = ..., help: str = "", *, flags: Optional[str] = None, short: Optional[str] = None,
           sep: Optional[str] = None, path: bool = False, argument: bool = False, cli: bool = True,
           metavar: Optional[str] = None, **field: Any) -> Any:
    """A model field that is also a command-line option.

    Parameters
    ----------
    default, help : the default value and the help text (``description``).
    flags : the option's spelling when not ``--field-name`` (``"--subvoxel/--binary-surface"``
        for an on/off pair, ``"--no-preview"``-style pairs as ``"--preview/--no-preview"``).
    short : a one-letter alias (``"-o"``).
    sep : the command line takes a ``sep``-separated string for this list field.
    path : the value is a file or folder (shown as ``<path>``).
    argument : positional argument instead of an option.
    cli : False for a setting that is not on the command line (library and recipes only).
    field : anything else ``pydantic.Field`` takes (``ge``, ``le``, ``default_factory``...).
    """
    from pydantic import Field  # imported here: the help texts above cost nothing to import

    meta = _meta(default, flags, short, sep, path, argument, cli, metavar)
    if "default_factory" in field:
        return Field(description=help, json_schema_extra={"cli": meta}, **field)
    return Field(default, description=help, json_schema_extra={"cli": meta}, **field)


def _meta(default: Any, flags, short, sep, path, argument, cli, metavar) -> dict:
    return {k: v for k, v in dict(flags=flags, short=short, sep=sep, path=path or None, argument=argument or None,
                                  skip=(not cli) or None, metavar=metavar).items() if v is not None}


def dataclass_option(default: Any = None, help: str = "", *, flags: Optional[str] = None,
                     short: Optional[str] = None, sep: Optional[str] = None, path: bool = False,
                     argument: bool = False, cli: bool = True, metavar: Optional[str] = None) -> Any:
    """:func:`option` for a field of a plain dataclass (``dataclasses.field`` with the help and
    the command-line part in its ``metadata``)."""
    import dataclasses

    meta = {"help": help, "cli": _meta(default, flags, short, sep, path, argument, cli, metavar)}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def cli_meta(field_info: Any) -> Optional[dict]:
    """The command-line part of a field declared with :func:`option` or :func:`dataclass_option`;
    None for a field declared without them (not a command-line option)."""
    extra = getattr(field_info, "json_schema_extra", None)
    if isinstance(extra, dict) and "cli" in extra:
        return dict(extra["cli"])
    meta = getattr(field_info, "metadata", None)
    if isinstance(meta, Mapping) and "cli" in meta:
        return dict(meta["cli"])
    return None


def field_help(field_info: Any) -> str:
    """The help text of a field (pydantic ``description`` or dataclass ``metadata['help']``)."""
    desc = getattr(field_info, "description", None)
    if desc:
        return desc
    meta = getattr(field_info, "metadata", None)
    return str(meta.get("help", "")) if isinstance(meta, Mapping) else ""


def device_option(default: str = "auto") -> Any:
    """``--device``: one declaration, one help text, for every command that runs PyTorch."""
    return option(default, DEVICE_HELP)


def series_option() -> Any:
    """``--series``: one declaration for every command that takes a DICOM folder."""
    return option(None, SERIES_HELP)
