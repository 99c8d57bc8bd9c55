"""Typed task options: each task declares its options once, beside it, as a dataclass of `option` fields.

One declaration serves three readers: `python -m tfseaice.train` defines one flag per field
(`define_flags`), task.json stores the values in `config.extra` (`to_extra`), and the task reads
them back typed (`from_extra`). A key an old task.json lacks (or holds as null) takes the field's
`absent` value, by default its default, so old model folders keep meaning what they meant.

A field's flag kind follows its default: bool, int, float, str (an enum when `choices` are
given), tuple (a comma-separated list). `parse` turns a flag's or task.json's value into the
option's value and raises ValueError for a bad one; the flag check reports that message.
"""

import dataclasses

from absl import flags

from tfseaice.errors import InputError

_UNSET = object()


def option(default, help, *, choices=None, parse=None, absent=_UNSET):  # noqa: A002 - absl's word
    """A task option field (see the module docstring)."""
    meta = {"help": help, "choices": tuple(str(c) for c in choices) if choices else None, "parse": parse,
            "absent": absent}
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return dataclasses.field(default_factory=lambda: value, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """Base of every task's options dataclass."""

    @classmethod
    def from_extra(cls, extra):
        """The options of a config's `extra` dict (unknown keys ignored, missing ones `absent`)."""
        extra = extra or {}
        values = {}
        for f in dataclasses.fields(cls):
            value = extra.get(f.name)
            if value is not None:
                values[f.name] = _parse(f, value)
            elif f.metadata["absent"] is not _UNSET:
                values[f.name] = f.metadata["absent"]
        return cls(**values)

    @classmethod
    def from_flags(cls, flag_values):
        """The options given on the command line (absl FlagValues that `define_flags` filled)."""
        return cls(**{f.name: _parse(f, flag_values[f.name].value) for f in dataclasses.fields(cls)})

    def to_extra(self):
        """The JSON form stored in task.json's `config.extra`: tuples become lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}


def _parse(field, value):
    parse = field.metadata["parse"]
    if parse is not None:
        return parse(value)
    if isinstance(field.default, bool):
        return bool(value)
    if isinstance(field.default, (int, float)) and not isinstance(value, bool):
        return type(field.default)(value)
    return value


def _flag_default(field):
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return [str(v) for v in default] if isinstance(default, tuple) else default


def _define(field, flag_values):
    name, meta = field.name, field.metadata
    default = _flag_default(field)
    if meta["choices"]:
        flags.DEFINE_enum(name, str(default), list(meta["choices"]), meta["help"], flag_values=flag_values)
    elif isinstance(default, bool):
        flags.DEFINE_bool(name, default, meta["help"], flag_values=flag_values)
    elif isinstance(default, int):
        flags.DEFINE_integer(name, default, meta["help"], flag_values=flag_values)
    elif isinstance(default, float):
        flags.DEFINE_float(name, default, meta["help"], flag_values=flag_values)
    elif isinstance(default, list):
        flags.DEFINE_list(name, default, meta["help"], flag_values=flag_values)
    else:
        flags.DEFINE_string(name, default, meta["help"], flag_values=flag_values)
    if meta["parse"] is not None:
        flags.register_validator(name, _validator(field), flag_values=flag_values)


def _validator(field):
    def check(value):
        try:
            field.metadata["parse"](value)
        except (ValueError, InputError) as exc:
            raise flags.ValidationError(f"--{field.name}: {exc}") from None
        return True
    return check


def define_flags(option_classes, flag_values=flags.FLAGS):
    """One flag per option field of all `option_classes`; a name two tasks share must be declared alike."""
    seen = {}
    for cls in option_classes:
        for f in dataclasses.fields(cls):
            key = (_flag_default(f), f.metadata["help"], f.metadata["choices"])
            if f.name in seen:
                if seen[f.name] != key:
                    raise ValueError(f"task option --{f.name} is declared twice with another default, help "
                                     f"or choices ({cls.__name__})")
                continue
            seen[f.name] = key
            _define(f, flag_values)
    return sorted(seen)
