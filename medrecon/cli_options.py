"""Command-line options built from an options model (:mod:`medrecon.options`): one
``typer`` parameter per model field, with the field's type, default and help, so a command's
``--help``, the user guide's option table and ``--config`` recipes cannot drift apart.

:func:`model_parameters` turns a pydantic model into ``inspect.Parameter``\\ s that typer reads
(the command function gets ``__signature__``); :func:`model_values` turns what the command line
gave back into the model's keyword arguments (comma lists split, paths as strings);
:func:`option_rows` lists a built command's options for documentation.
"""
from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Iterable, Optional

import typer

from medrecon.options import cli_meta, field_help

__all__ = ["model_parameters", "model_values", "given_options", "option_rows", "model_fields"]


class _Field:
    """One field of an options model, pydantic or dataclass alike."""

    def __init__(self, name, annotation, required, default, meta, help_text):
        self.name, self.annotation, self.required = name, annotation, required
        self.default, self.meta, self.help = default, meta, help_text


def model_fields(model: type) -> list[_Field]:
    """The command-line fields of a pydantic model or a dataclass, in declaration order
    (fields declared with ``cli=False`` or without :func:`medrecon.options.option` left out)."""
    import dataclasses

    out = []
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model)
        for f in dataclasses.fields(model):
            meta = cli_meta(f)
            if meta is None or meta.get("skip"):
                continue
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            default = None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            out.append(_Field(f.name, hints.get(f.name, str), required, default, meta, field_help(f)))
        return out
    for name, f in model.model_fields.items():
        meta = cli_meta(f)
        if meta is None or meta.get("skip"):
            continue
        required = f.is_required()
        default = None if required else f.get_default(call_default_factory=True)
        out.append(_Field(name, f.annotation, required, default, meta, field_help(f)))
    return out


def _base(annotation: Any) -> Any:
    """``Optional[X]`` -> ``X``."""
    if typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _cli_type(annotation: Any, meta: dict) -> Any:
    base = _base(annotation)
    if meta.get("sep") or typing.get_origin(base) is typing.Literal:
        return str
    if meta.get("path"):
        return Path
    if base in (bool, int, float, str):
        return base
    return str


def model_parameters(model: type, skip: Iterable[str] = ()) -> list[inspect.Parameter]:
    """One keyword parameter per command-line field of ``model`` (a pydantic model or a
    dataclass; those in ``skip`` left out), each with a ``typer.Option``/``typer.Argument`` default."""
    out = []
    for f in model_fields(model):
        if f.name in skip:
            continue
        meta = f.meta
        typ = _cli_type(f.annotation, meta)
        default: Any = ... if f.required else f.default
        if meta.get("sep") and isinstance(default, (list, tuple)):
            default = meta["sep"].join(map(str, default))
        if meta.get("argument"):
            info = typer.Argument(default, help=f.help, metavar=f.name.upper())
        else:
            decls = [meta.get("flags") or "--" + f.name.replace("_", "-")]
            if meta.get("short"):
                decls.insert(0, meta["short"])
            info = typer.Option(default, *decls, help=f.help, metavar=meta.get("metavar"))
        annotation = typ if (f.required or default is not None or typ is bool) else Optional[typ]
        out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation))
    return out


def model_values(model: type, values: dict) -> dict:
    """The keyword arguments of ``model`` from the command line's values (comma lists split,
    paths as strings); names that are not command-line fields of the model are left out."""
    out = {}
    for f in model_fields(model):
        if f.name not in values:
            continue
        v = values[f.name]
        if isinstance(v, Path):
            v = str(v)
        if f.meta.get("sep") and isinstance(v, str):
            v = [x.strip() for x in v.split(f.meta["sep"]) if x.strip()] or None
        out[f.name] = v
    return out


def given_options(ctx: typer.Context) -> set[str]:
    """Names of the parameters the user typed on the command line (not defaults)."""
    return {n for n in ctx.params if getattr(ctx.get_parameter_source(n), "name", "") == "COMMANDLINE"}


def option_rows(command) -> list[tuple[str, str, str, str]]:
    """``(option, type, default, help)`` for every parameter of a built (click) command, in order;
    the help option is left out. Flags have no type; an on/off pair shows both spellings."""
    ctx = typer.Context(command)
    rows = []
    for p in command.params:
        if getattr(p, "param_type_name", "") == "argument":
            continue
        names = ", ".join([*p.opts, *p.secondary_opts]) if not p.secondary_opts else \
            "/".join(p.opts) + "/" + "/".join(p.secondary_opts)
        if getattr(p, "is_flag", False):
            typ = ""
            default = ("on" if p.default else "off") if p.secondary_opts or p.default else ""
            if p.secondary_opts:
                default = p.opts[0] if p.default else p.secondary_opts[0]
        else:
            shown = p.display_type_rich(ctx) if hasattr(p, "display_type_rich") else getattr(p.type, "name", "")
            typ = {"float": "number", "int": "integer", "path": "path"}.get(str(shown or "").strip("<>").lower(), "text")
            default = "" if p.default is None or p.required else str(p.default)
        if p.required:
            default = "(required)"
        rows.append((names, typ, default, " ".join((p.help or "").split())))
    return rows
