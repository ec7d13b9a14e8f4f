"""Typed JSON for the build record: values are written as plain JSON and checked against their
declared types when read back, so a cache file can hold data but never code.

A decoder is compiled once per type from the dataclass and pydantic declarations in `models.py`:
dataclasses are JSON arrays of their fields in order, pydantic models their JSON dump (validated
again on load), dicts with non-string keys lists of pairs, unions of several classes `[tag, value]`.
Anything that does not fit raises `Corrupt`.
"""

from __future__ import annotations

import dataclasses
import operator
import types
import typing
from functools import lru_cache
from typing import Any, Callable, Literal, Union

from pydantic import BaseModel, ValidationError


class Corrupt(ValueError):
    """A cache value that does not have the shape its type declares."""


Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]

_SCALARS = (str, int, float, bool, type(None))


def _identity(v: Any) -> Any:
    return v


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _is_model_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_args(tp: Any) -> tuple | None:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


@lru_cache(maxsize=None)
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _scalar_check(allowed: tuple[type, ...]) -> Decoder:
    float_ok = float in allowed
    int_ok = int in allowed
    bool_ok = bool in allowed
    none_ok = type(None) in allowed
    str_ok = str in allowed

    def check(v: Any) -> Any:
        t = type(v)
        if t is str and str_ok or t is bool and bool_ok or v is None and none_ok:
            return v
        if t is int and (int_ok or float_ok):
            return float(v) if not int_ok else v
        if t is float and float_ok:
            return v
        raise Corrupt(f"expected {' or '.join(a.__name__ for a in allowed)}, got {t.__name__}")

    return check


@lru_cache(maxsize=None)
def decoder(tp: Any) -> Decoder:
    """The function that checks a JSON value against `tp` and builds the Python value."""
    if tp is Any:
        raise TypeError("the build record declares no Any: give the value a type")
    if tp in _SCALARS:
        return _scalar_check((tp,))
    if tp is tuple:  # a bare `tuple` (key paths): a tuple of names and indices
        return decoder(tuple[Union[str, int], ...])
    union = _union_args(tp)
    if union is not None:
        if all(a in _SCALARS for a in union):
            return _scalar_check(union)
        others = [a for a in union if a is not type(None)]
        nullable = len(others) < len(union)
        if len(others) == 1:
            inner = decoder(others[0])
            return lambda v: None if v is None else inner(v)
        by_tag = {a.__name__: decoder(a) for a in others}

        def tagged(v: Any) -> Any:
            if v is None and nullable:
                return None
            if type(v) is not list or len(v) != 2 or v[0] not in by_tag:
                raise Corrupt("expected a tagged value")
            return by_tag[v[0]](v[1])

        return tagged
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        allowed = frozenset(args)

        def literal(v: Any) -> Any:
            if type(v) is not str or v not in allowed:
                raise Corrupt(f"unexpected value {v!r}")
            return v

        return literal
    if origin in (list, set, frozenset) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        build = tuple if origin is tuple else origin
        plain = _plain_types(args[0])
        if plain is not None:
            def scalars(v: Any) -> Any:
                if type(v) is not list or not set(map(type, v)) <= plain:
                    raise Corrupt("expected a list of values")
                return v if build is list else build(v)

            return scalars
        item = decoder(args[0])

        def sequence(v: Any) -> Any:
            if type(v) is not list:
                raise Corrupt("expected a list")
            return build([item(x) for x in v])

        return sequence
    if origin is tuple:
        items = [decoder(a) for a in args]
        n = len(items)

        def fixed(v: Any) -> Any:
            if type(v) is not list or len(v) != n:
                raise Corrupt(f"expected {n} values")
            return tuple(d(x) for d, x in zip(items, v))

        return fixed
    if origin is dict:
        key_tp, value_tp = args
        value = decoder(value_tp)
        if key_tp is str:
            plain = _plain_types(value_tp)
            if plain is not None:
                def plain_mapping(v: Any) -> Any:
                    if type(v) is not dict or not set(map(type, v.values())) <= plain:
                        raise Corrupt("expected a mapping of values")
                    return v

                return plain_mapping

            def mapping(v: Any) -> Any:
                if type(v) is not dict:
                    raise Corrupt("expected a mapping")
                return {k: value(x) for k, x in v.items()}

            return mapping
        key = decoder(key_tp)

        def pairs(v: Any) -> Any:
            if type(v) is not list:
                raise Corrupt("expected a list of pairs")
            out = {}
            for pair in v:
                if type(pair) is not list or len(pair) != 2:
                    raise Corrupt("expected a pair")
                out[key(pair[0])] = value(pair[1])
            return out

        return pairs
    if _is_model_type(tp):
        def model(v: Any) -> Any:
            if type(v) is not dict:
                raise Corrupt(f"expected {tp.__name__}")
            try:
                return tp.model_validate(v)
            except ValidationError as exc:
                raise Corrupt(f"{tp.__name__}: {exc.error_count()} invalid field(s)") from None

        return model
    if _is_dataclass_type(tp):
        kinds = [_plain_types(ftp) for _name, ftp in _fields(tp)]
        nested = [(i, decoder(ftp)) for i, (_name, ftp) in enumerate(_fields(tp)) if kinds[i] is None]
        plain_fields = [(i, k) for i, k in enumerate(kinds) if k is not None]
        n = len(kinds)

        def record(v: Any) -> Any:
            if type(v) is not list or len(v) != n:
                raise Corrupt(f"expected {tp.__name__}")
            for i, allowed in plain_fields:
                if type(v[i]) not in allowed:
                    raise Corrupt(f"{tp.__name__}: unexpected {type(v[i]).__name__}")
            for i, d in nested:
                v[i] = d(v[i])
            return tp(*v)

        return record
    raise TypeError(f"no JSON form for {tp!r}")


def _plain_types(tp: Any) -> frozenset | None:
    """The JSON types a scalar (or union of scalars) may arrive as; None for anything else."""
    members = _union_args(tp) or (tp,)
    if not all(a in _SCALARS for a in members):
        return None
    allowed = set(members)
    if float in allowed:
        allowed.add(int)  # 5.0 stays 5.0 in JSON, but a whole number written as an int is still a number
    return frozenset(allowed)


@lru_cache(maxsize=None)
def encoder(tp: Any) -> Encoder:
    """The function that turns a value of type `tp` into plain JSON (the inverse of `decoder`)."""
    if tp in _SCALARS or tp is tuple or tp is Any:
        return _identity
    union = _union_args(tp)
    if union is not None:
        if all(a in _SCALARS for a in union):
            return _identity
        others = [a for a in union if a is not type(None)]
        if len(others) == 1:
            inner = encoder(others[0])
            return lambda v: None if v is None else inner(v)
        by_type = {a: (a.__name__, encoder(a)) for a in others}

        def tagged(v: Any) -> Any:
            if v is None:
                return None
            name, enc = by_type[type(v)]
            return [name, enc(v)]

        return tagged
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return _identity
    if origin in (list, set, frozenset) or origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = encoder(args[0])
        if origin in (set, frozenset):
            return lambda v: sorted(item(x) for x in v)
        return (lambda v: list(v)) if item is _identity else (lambda v: [item(x) for x in v])
    if origin is tuple:
        items = [encoder(a) for a in args]
        return lambda v: [e(x) for e, x in zip(items, v)]
    if origin is dict:
        key_tp, value_tp = args
        value = encoder(value_tp)
        if key_tp is str:
            return _identity if value is _identity else (lambda v: {k: value(x) for k, x in v.items()})
        key = encoder(key_tp)
        return lambda v: [[key(k), value(x)] for k, x in v.items()]
    if _is_model_type(tp):
        return lambda v: v.model_dump(mode="json")
    if _is_dataclass_type(tp):
        names = [name for name, _ftp in _fields(tp)]
        nested = [(i, encoder(ftp)) for i, (_name, ftp) in enumerate(_fields(tp)) if encoder(ftp) is not _identity]
        get = operator.attrgetter(*names)
        if len(names) == 1:
            return lambda v: [nested[0][1](get(v))] if nested else [get(v)]

        def record(v: Any) -> Any:
            out = list(get(v))
            for i, e in nested:
                out[i] = e(out[i])
            return out

        return record
    raise TypeError(f"no JSON form for {tp!r}")
