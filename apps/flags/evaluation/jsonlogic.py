"""Compile flagd targeting rules (JsonLogic) into nested Python closures.

The semantics are those of flagd's reference evaluator, openfeature-flagd-core 2.0.0: the
JsonLogic builtins of panzi-json-logic 1.0.1 (module ``json_logic``) plus flagd's operators
``fractional``, ``starts_with``, ``ends_with`` and ``sem_ver``. Every operator here is a port of
that code, coercions included, so a compiled rule returns what ``json_logic.jsonLogic`` returns
for the same data (tests/flags/test_evaluator.py checks this on random rules and data). The
tree is walked once at compile time; hot shapes (``var`` with a constant path, comparisons and
``in`` against constants, ``fractional`` with constant weights, ``sem_ver`` against a constant
version) get specialised closures, everything else calls the ported operator.

Where this module is stricter than the reference, it refuses at compile time what the reference
would only report (or silently turn into ``null``) on every evaluation:

- unknown operators, dotted operator names and unresolved ``{"$ref": ...}`` (flagd-core raises
  ParseError when it reaches them);
- ``var`` with more than two arguments (a TypeError in the reference, every time);
- ``starts_with``/``ends_with`` without exactly two arguments or with a constant non-string
  second argument, ``sem_ver`` without exactly three arguments or with a constant operator or
  version that can never work, ``fractional`` without variants, with a constant null bucketing
  value or with a constant variant entry that is not ``[variant]`` / ``[variant, int weight]``
  (the reference returns null for these);
- anything nested so deeply that compiling it would exhaust the Python stack.

``log`` returns its argument without printing it. ``regex`` is a portal-only extension (see
PORTAL_ONLY_OPERATORS); flagd itself cannot evaluate it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date, datetime, timezone
from datetime import time as dt_time
from time import mktime
from typing import Any, NamedTuple
from wsgiref.handlers import format_date_time

import cbor2
import mmh3
import semver

__all__ = [
    "MAX_REGEX_LENGTH",
    "PORTAL_ONLY_OPERATORS",
    "FlagdParseError",
    "compile_logic",
    "compile_targeting",
    "operators_used",
]

Rule = Callable[[Any], Any]
TrackedRule = Callable[[Any], tuple[Any, bool]]


class FlagdParseError(ValueError):
    """A flag definition or targeting rule that cannot be compiled."""


PORTAL_ONLY_OPERATORS = frozenset({"regex"})
MAX_REGEX_LENGTH = 256
MAX_WEIGHT_SUM = 2_147_483_647  # flagd: the weights of one fractional must fit an int32
SEMVER_OPERATORS = frozenset({"=", "!=", "<", "<=", ">", ">=", "^", "~"})

_NAN = float("nan")
_NUMERIC = (int, float)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # noqa: UP017 (verbatim from the reference)
# Types for which `x in list` equals `x in frozenset(hashable members of list)`: their hash agrees
# with ==, and none of them ever equals a list or a dict.
_HASHABLE = frozenset({str, int, float, bool, type(None)})
_MISS = object()
_CACHE_LIMIT = 4096


# --- JsonLogic coercions and builtins (ports of json_logic/builtins.py) --------------------------


def to_number(a: Any) -> float | int:
    if isinstance(a, _NUMERIC):
        return a
    if a is None:
        return 0
    if isinstance(a, list):
        if not a:
            return 0
        if len(a) > 1:
            return _NAN
        return to_number(a[0])
    if isinstance(a, dict):
        return _NAN
    if isinstance(a, str) and a.strip().lower() in ("inf", "-inf", "+inf"):
        return _NAN
    if isinstance(a, datetime):
        return (a - _EPOCH).total_seconds() * 1000.0
    if isinstance(a, date):
        return (datetime.combine(a, dt_time()) - _EPOCH).total_seconds() * 1000.0
    try:
        return float(a)
    except ValueError:
        return _NAN


def to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return "%.15g" % value  # noqa: UP031 (verbatim from the reference)
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list):
        return ",".join(to_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (date, datetime)):
        return format_date_time(mktime(value.timetuple()))
    return str(value)


def to_bool(value: Any = None) -> bool:
    """JsonLogic truthiness as panzi implements it (NaN is false, [] is false, {} is true)."""
    if value is None:
        return False
    if type(value) is bool:
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return False
        return bool(value)
    if isinstance(value, (str, int, list, bool)):
        return bool(value)
    return True


def not_(value: Any = None) -> bool:
    return not to_bool(value)


def op_equals(data: Any = None, a: Any = None, b: Any = None, *_ignored: Any) -> bool:
    atype = type(a)
    if atype is type(b):
        if atype in (list, dict):
            return a is b
        return a == b
    if isinstance(a, _NUMERIC):
        if isinstance(b, _NUMERIC):
            return a == b
        return a == to_number(b)
    if isinstance(b, _NUMERIC):
        return to_number(a) == b
    if a is None or b is None:
        return False
    if isinstance(a, str):
        if isinstance(b, bool):
            return to_number(a) == to_number(b)
        if isinstance(b, (list, dict)):
            return a == to_string(b)
        raise TypeError
    if isinstance(a, bool):
        return to_number(a) == to_number(b)
    if isinstance(a, (list, dict)):
        if isinstance(b, (list, dict)):
            return False
        if isinstance(b, str):
            return to_string(a) == b
        if isinstance(b, bool):
            return to_number(a) == to_number(b)
        raise TypeError
    raise TypeError


def _compare(a: Any, b: Any, cmp: Callable[[Any, Any], bool]) -> bool:
    if isinstance(a, _NUMERIC):
        return cmp(a, to_number(b))
    if isinstance(b, _NUMERIC):
        return cmp(to_number(a), b)
    if isinstance(a, str):
        return cmp(a, to_string(b))
    if isinstance(b, str):
        return cmp(to_string(a), b)
    return cmp(to_number(a), to_number(b))


def _lt(a: Any, b: Any) -> bool:
    return a < b


def _gt(a: Any, b: Any) -> bool:
    return a > b


def _le(a: Any, b: Any) -> bool:
    return a <= b


def _ge(a: Any, b: Any) -> bool:
    return a >= b


def _chain(cmp: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def op(data: Any = None, a: Any = None, b: Any = None, c: Any = None, *_ignored: Any) -> bool:
        if c is None:
            return _compare(a, b, cmp)
        return _compare(a, b, cmp) and _compare(b, c, cmp)

    return op


def op_substr(
    data: Any = None, string: Any = None, index: Any = None, length: Any = None, *_ignored: Any
) -> str:
    string = to_string(string)
    index = to_number(index)
    strlen = len(string)
    if math.isnan(index):
        index = 0
    elif index < 0:
        index = -index
        index = 0 if index >= strlen else strlen - int(index)
    else:
        index = int(index)
        if index >= strlen:
            index = strlen
    if length is None:
        end_index = strlen
    else:
        length = to_number(length)
        if math.isnan(length):
            end_index = index
        else:
            length = int(length)
            if length < 0:
                end_index = strlen + length
                if end_index < index:
                    end_index = index
            else:
                end_index = index + length
    return string[index:end_index]


def op_var(data: Any = None, key: Any = None, default: Any = None) -> Any:
    if key is None or key == "":
        return data
    if isinstance(key, _NUMERIC):
        if isinstance(data, (list, str)):
            try:
                index = int(key)
            except ValueError:
                return default
            if index != key or index < 0 or index >= len(data):
                return default
            return data[index]
        if isinstance(data, dict):
            data = data.get(key)
            if data is None:
                return default
        else:
            return default
    return _walk(data, to_string(key).split("."), default)


def _walk(data: Any, props: list[str] | tuple[str, ...], default: Any) -> Any:
    for prop in props:
        if isinstance(data, (list, str)):
            if prop == "length":
                return len(data)
            try:
                index = int(prop, 10)
            except ValueError:
                return default
            if prop != str(index) or index < 0 or index >= len(data):
                return default
            data = data[index]
        elif isinstance(data, dict):
            data = data.get(prop)
        else:
            return default
    if data is None:
        return default
    return data


def op_missing(data: Any = None, *args: Any) -> list[Any]:
    keys = args[0] if args and isinstance(args[0], list) else args
    return [key for key in keys if (value := op_var(data, key)) is None or value == ""]


def op_missing_some(
    data: Any = None, need_count: Any = 0, keys: Any = None, *_ignored: Any
) -> list[Any]:
    if not isinstance(keys, list):
        return []
    need_count = to_number(need_count)
    missing_keys = op_missing(data, keys)
    if len(keys) - len(missing_keys) >= need_count:
        return []
    return missing_keys


def op_merge(data: Any = None, *args: Any) -> list[Any]:
    items: list[Any] = []
    for arg in args:
        if isinstance(arg, list):
            items.extend(arg)
        else:
            items.append(arg)
    return items


def op_in(data: Any = None, needle: Any = None, haystack: Any = None, *_ignored: Any) -> bool:
    if isinstance(haystack, list):
        return needle in haystack
    if isinstance(haystack, str):
        return to_string(needle) in haystack
    return False


def op_add(data: Any = None, *args: Any) -> float | int:
    value: float | int = 0
    for arg in args:
        value += to_number(arg)
    return value


def op_mul(data: Any = None, *args: Any) -> float | int:
    value: float | int = 1
    for arg in args:
        value *= to_number(arg)
    return value


def op_sub(data: Any = None, a: Any = None, b: Any = None, *_ignored: Any) -> float | int:
    return -to_number(a) if b is None else to_number(a) - to_number(b)


def op_div(data: Any = None, a: Any = None, b: Any = None, *_ignored: Any) -> float:
    return to_number(a) / to_number(b)


def op_mod(data: Any = None, a: Any = None, b: Any = None, *_ignored: Any) -> float | int:
    return to_number(a) % to_number(b)


def op_min(data: Any = None, *args: Any) -> float | int:
    return min(to_number(arg) for arg in args) if args else _NAN


def op_max(data: Any = None, *args: Any) -> float | int:
    return max(to_number(arg) for arg in args) if args else _NAN


def op_cat(data: Any = None, *args: Any) -> str:
    return "".join(to_string(arg) for arg in args)


def op_log(data: Any = None, arg: Any = None, *_ignored: Any) -> Any:
    return arg


# --- flagd's custom operators (ports of flagd/core/targeting/custom_ops.py) ----------------------


def _cbor_text(text: str) -> bytes:
    """Canonical CBOR of a text string, as cbor2.dumps(text, canonical=True) writes it."""
    raw = text.encode()
    size = len(raw)
    if size < 24:
        return bytes((0x60 + size,)) + raw
    if size < 0x100:
        return bytes((0x78, size)) + raw
    if size < 0x10000:
        return b"\x79" + size.to_bytes(2, "big") + raw
    if size < 0x100000000:
        return b"\x7a" + size.to_bytes(4, "big") + raw
    return b"\x7b" + size.to_bytes(8, "big") + raw


def normalize_numbers(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: normalize_numbers(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [normalize_numbers(v) for v in data]
    if isinstance(data, float) and data.is_integer() and -(2**63) <= data <= 2**64 - 1:
        return int(data)
    return data


def _cbor_key(bucket_by: Any) -> bytes | None:
    try:
        if isinstance(bucket_by, str):
            return _cbor_text(bucket_by)
        return cbor2.dumps(normalize_numbers(bucket_by), canonical=True)
    except Exception:
        return None


_PAIR_PREFIX: dict[str, bytes] = {}


def _pair_key(flag_key: Any, targeting_key: str) -> bytes | None:
    """CBOR of [flag_key, targeting_key]: the bucketing key of fractional's shorthand."""
    if isinstance(flag_key, str):
        prefix = _PAIR_PREFIX.get(flag_key)
        try:
            if prefix is None:
                prefix = b"\x82" + _cbor_text(flag_key)
                if len(_PAIR_PREFIX) >= _CACHE_LIMIT:
                    _PAIR_PREFIX.clear()
                _PAIR_PREFIX[flag_key] = prefix
            return prefix + _cbor_text(targeting_key)
        except UnicodeEncodeError:
            return None
    return _cbor_key([flag_key, targeting_key])


def _parse_fraction(arg: Any) -> tuple[Any, int] | None:
    if not isinstance(arg, (tuple, list)) or not arg or len(arg) > 2:
        return None
    weight = 1
    if len(arg) == 2:
        w = arg[1]
        if isinstance(w, bool) or not isinstance(w, int):
            return None
        weight = max(0, w)
    return arg[0], weight


def _fraction_table(args: Any) -> tuple[int, tuple[tuple[int, Any], ...]] | None:
    """(total weight, ((range end, variant), ...)), or None where fractional returns null."""
    table = []
    total = 0
    for arg in args:
        fraction = _parse_fraction(arg)
        if fraction is None:
            return None
        total += fraction[1]
        table.append((total, fraction[0]))
    if total > MAX_WEIGHT_SUM or total <= 0:
        return None
    return total, tuple(table)


def _pick(hash_key: bytes, total: int, table: tuple[tuple[int, Any], ...]) -> Any:
    bucket = (mmh3.hash(hash_key, signed=False) * total) >> 32
    for end, variant in table:
        if bucket < end:
            return variant
    return None


def _shorthand_key(data: Any) -> bytes | None:
    targeting_key = data.get("targetingKey")
    if targeting_key is None or not isinstance(targeting_key, str) or not targeting_key:
        return None
    return _pair_key(data.get("$flagd", {}).get("flagKey", ""), targeting_key)


def op_fractional(data: Any, *args: Any) -> Any:
    if not args:
        return None
    if isinstance(args[0], (list, tuple)):
        hash_key = _shorthand_key(data)
    else:
        if args[0] is None:
            return None
        hash_key = _cbor_key(args[0])
        args = args[1:]
    if hash_key is None:
        return None
    parsed = _fraction_table(args)
    if parsed is None:
        return None
    return _pick(hash_key, *parsed)


def _string_comp(name: str) -> Callable[..., bool | None]:
    def op(data: Any, *args: Any) -> bool | None:
        if len(args) != 2:
            return None
        arg1, arg2 = args
        if not isinstance(arg1, str) or not isinstance(arg2, str):
            return None
        return getattr(arg1, name)(arg2)

    return op


def normalize_version(arg: Any) -> semver.Version:
    version = str(arg)
    if version.startswith(("v", "V")):
        version = version[1:]
    numeric_part = version.split("-")[0].split("+")[0]
    dot_count = numeric_part.count(".")
    if dot_count < 2:
        version = numeric_part + ".0" * (2 - dot_count) + version[len(numeric_part) :]
    return semver.Version.parse(version)


_SEMVER_COMPARE: dict[Any, Callable[[semver.Version, semver.Version], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "^": lambda a, b: a.major == b.major,
    "~": lambda a, b: a.major == b.major and a.minor == b.minor,
}


def op_sem_ver(data: Any, *args: Any) -> bool | None:
    if len(args) != 3:
        return None
    arg1, op, arg2 = args
    try:
        v1 = normalize_version(arg1)
        v2 = normalize_version(arg2)
    except ValueError:
        return None
    try:
        compare = _SEMVER_COMPARE.get(op)
    except TypeError:  # an unhashable operator (list, dict) matches no operator
        return None
    return None if compare is None else compare(v1, v2)


# --- operator tables --------------------------------------------------------------------------

_OPS: dict[str, Callable[..., Any]] = {
    "==": op_equals,
    "!=": lambda data=None, a=None, b=None, *_: not op_equals(data, a, b),
    "===": lambda data=None, a=None, b=None, *_: a == b,
    "!==": lambda data=None, a=None, b=None, *_: a != b,
    "<": _chain(_lt),
    ">": _chain(_gt),
    "<=": _chain(_le),
    ">=": _chain(_ge),
    "!": lambda data=None, a=None, *_: not_(a),
    "!!": lambda data=None, a=None, *_: to_bool(a),
    "+": op_add,
    "*": op_mul,
    "-": op_sub,
    "/": op_div,
    "%": op_mod,
    "in": op_in,
    "min": op_min,
    "max": op_max,
    "cat": op_cat,
    "log": op_log,
    "var": op_var,
    "substr": op_substr,
    "merge": op_merge,
    "missing": op_missing,
    "missing_some": op_missing_some,
    "fractional": op_fractional,
    "starts_with": _string_comp("startswith"),
    "ends_with": _string_comp("endswith"),
    "sem_ver": op_sem_ver,
}
_LAZY_OPS = frozenset({"if", "?:", "and", "or", "filter", "reduce", "map", "all", "some", "none"})
# Operators whose result depends on their arguments only, so constant arguments fold.
_PURE_OPS = frozenset(_OPS) - {"var", "missing", "missing_some", "fractional"}
_BOOLISH_OPS = frozenset(
    {"==", "!=", "===", "!==", "<", ">", "<=", ">=", "!", "!!", "in", "starts_with"}
    | {"ends_with", "sem_ver", "all", "some", "none", "regex"}
)
KNOWN_OPERATORS = frozenset(_OPS) | _LAZY_OPS | PORTAL_ONLY_OPERATORS


# --- the compiler -----------------------------------------------------------------------------


class _Node(NamedTuple):
    fn: Rule
    const: bool = False
    value: Any = None
    # The result is always a bool or None, so Python truthiness equals JsonLogic truthiness.
    boolish: bool = False


def _const(value: Any) -> _Node:
    def fn(data: Any) -> Any:
        return value

    return _Node(fn, True, value, value is None or type(value) is bool)


def _dyn(fn: Rule, boolish: bool = False) -> _Node:
    return _Node(fn, False, None, boolish)


def _split(expr: Any) -> tuple[str | None, list[Any]]:
    """(operator, argument list) when expr is an operation, else (None, [])."""
    if not isinstance(expr, dict) or len(expr) != 1:
        return None, []
    op, args = next(iter(expr.items()))
    return op, args if isinstance(args, list) else [args]


def _compile(expr: Any, top: bool, path: str) -> _Node:
    if isinstance(expr, list):
        items = [_compile(item, top, f"{path}[{i}]") for i, item in enumerate(expr)]
        if all(item.const for item in items):
            return _const([item.value for item in items])
        fns = tuple(item.fn for item in items)
        return _dyn(lambda data: [fn(data) for fn in fns])
    op, args = _split(expr)
    if op is None:
        return _const(expr)
    if not isinstance(op, str):
        raise FlagdParseError(f"operator {op!r} at {path} is not a string")
    where = f"{path}.{op}"
    if op in _LAZY_OPS:
        return _LAZY_COMPILERS[op](args, top, where)
    if op not in _OPS and op != "regex":
        raise FlagdParseError(f"unknown operator {op!r} at {path}")
    nodes = [_compile(arg, top, f"{where}[{i}]") for i, arg in enumerate(args)]
    special = _SPECIAL_COMPILERS.get(op)
    if special is not None:
        node = special(nodes, top, where)
        if node is not None:
            return node
    return _generic(op, nodes)


def _generic(op: str, nodes: list[_Node]) -> _Node:
    impl = _OPS[op]
    boolish = op in _BOOLISH_OPS
    if op in _PURE_OPS and all(node.const for node in nodes):
        folded = _fold(impl, [node.value for node in nodes])
        if folded is not _MISS:
            return _const(folded)
    fns = tuple(node.fn for node in nodes)
    if not fns:
        return _dyn(lambda data: impl(data), boolish)
    if len(fns) == 1:
        (f0,) = fns
        return _dyn(lambda data: impl(data, f0(data)), boolish)
    if len(fns) == 2:
        f0, f1 = fns
        return _dyn(lambda data: impl(data, f0(data), f1(data)), boolish)
    return _dyn(lambda data: impl(data, *[fn(data) for fn in fns]), boolish)


def _fold(impl: Callable[..., Any], values: list[Any]) -> Any:
    """impl applied to constants, or _MISS when that raises (it then raises at evaluation time,
    as in the reference)."""
    try:
        return impl(None, *values)
    except Exception:
        return _MISS


def _extras_dynamic(nodes: list[_Node], used: int) -> bool:
    """Whether arguments past the ones an operator uses still need evaluating (they may raise)."""
    return any(not node.const for node in nodes[used:])


# Lazy operators get their raw arguments.


def _c_if(args: list[Any], top: bool, path: str) -> _Node:
    count = len(args)
    if count == 0:
        return _const(None)
    nodes = [_compile(arg, top, f"{path}[{i}]") for i, arg in enumerate(args)]
    if count == 1:
        return nodes[0]
    branches = tuple(
        (nodes[i].fn, nodes[i].boolish, nodes[i + 1].fn) for i in range(0, count - 1, 2)
    )
    otherwise = nodes[-1].fn if count % 2 else None
    boolish = all(nodes[i + 1].boolish for i in range(0, count - 1, 2)) and (
        otherwise is None or nodes[-1].boolish
    )

    def fn(data: Any) -> Any:
        for cond, cond_boolish, then in branches:
            value = cond(data)
            if value if cond_boolish else to_bool(value):
                return then(data)
        return None if otherwise is None else otherwise(data)

    return _dyn(fn, boolish)


def _c_and_or(is_and: bool) -> Callable[[list[Any], bool, str], _Node]:
    def compile_(args: list[Any], top: bool, path: str) -> _Node:
        nodes = [_compile(arg, top, f"{path}[{i}]") for i, arg in enumerate(args)]
        if not nodes:
            return _const(None)
        if len(nodes) == 1:
            return nodes[0]
        boolish = all(node.boolish for node in nodes)
        fns = tuple(node.fn for node in nodes)
        if boolish and len(fns) == 2:
            f0, f1 = fns
            if is_and:
                return _dyn(lambda data: f0(data) and f1(data), True)
            return _dyn(lambda data: f0(data) or f1(data), True)
        if boolish and is_and:

            def fn(data: Any) -> Any:
                for f in fns:
                    value = f(data)
                    if not value:
                        return value
                return value

        elif boolish:

            def fn(data: Any) -> Any:
                for f in fns:
                    value = f(data)
                    if value:
                        return value
                return value

        else:
            stop = not is_and

            def fn(data: Any) -> Any:
                for f in fns:
                    value = f(data)
                    if to_bool(value) is stop:
                        return value
                return value

        return _dyn(fn, boolish)

    return compile_


def _c_filter(args: list[Any], top: bool, path: str) -> _Node:
    if len(args) < 2:
        return _dyn(lambda data: [])
    items = _compile(args[0], top, f"{path}[0]").fn
    sub = _compile(args[1], False, f"{path}[1]")
    test, sub_boolish = sub.fn, sub.boolish

    def fn(data: Any) -> Any:
        values = items(data)
        if not isinstance(values, list):
            return []
        if sub_boolish:
            return [item for item in values if test(item)]
        return [item for item in values if to_bool(test(item))]

    return _dyn(fn)


def _c_map(args: list[Any], top: bool, path: str) -> _Node:
    if not args:
        return _dyn(lambda data: [])
    items = _compile(args[0], top, f"{path}[0]").fn
    sub = _compile(args[1] if len(args) > 1 else None, False, f"{path}[1]").fn

    def fn(data: Any) -> Any:
        values = items(data)
        if not isinstance(values, list):
            return []
        return [sub(item) for item in values]

    return _dyn(fn)


def _c_reduce(args: list[Any], top: bool, path: str) -> _Node:
    if not args:
        return _const(None)
    items = _compile(args[0], top, f"{path}[0]").fn
    sub = _compile(args[1] if len(args) > 1 else None, False, f"{path}[1]").fn
    init = args[2] if len(args) > 2 else None  # the reference does not evaluate the initial value

    def fn(data: Any) -> Any:
        values = items(data)
        if not isinstance(values, list):
            return init
        context = {"accumulator": init}
        for item in values:
            context["current"] = item
            context["accumulator"] = sub(context)
        return context["accumulator"]

    return _dyn(fn)


def _c_quantifier(kind: str) -> Callable[[list[Any], bool, str], _Node]:
    short = kind == "none"  # the result when there are fewer than two arguments or no list

    def compile_(args: list[Any], top: bool, path: str) -> _Node:
        if len(args) < 2:
            return _const(short)
        items = _compile(args[0], top, f"{path}[0]").fn
        test = _compile(args[1], False, f"{path}[1]").fn

        def fn(data: Any) -> bool:
            values = items(data)
            if not isinstance(values, list):
                return short
            if kind == "all":
                return bool(values) and all(to_bool(test(item)) for item in values)
            found = any(to_bool(test(item)) for item in values)
            return not found if kind == "none" else found

        return _dyn(fn, True)

    return compile_


_LAZY_COMPILERS: dict[str, Callable[[list[Any], bool, str], _Node]] = {
    "if": _c_if,
    "?:": _c_if,
    "and": _c_and_or(True),
    "or": _c_and_or(False),
    "filter": _c_filter,
    "map": _c_map,
    "reduce": _c_reduce,
    "all": _c_quantifier("all"),
    "some": _c_quantifier("some"),
    "none": _c_quantifier("none"),
}


# Eager operators get compiled arguments; returning None falls back to the generic closure.


def _c_var(nodes: list[_Node], top: bool, path: str) -> _Node | None:
    if len(nodes) > 2:
        raise FlagdParseError(f"{path} takes at most 2 arguments (path, default), got {len(nodes)}")
    if not nodes or not nodes[0].const:
        return None
    key = nodes[0].value
    if key is None or (isinstance(key, str) and key == ""):
        return _dyn(lambda data: data)
    if isinstance(key, _NUMERIC) or not isinstance(key, str):
        return None
    props = tuple(key.split("."))
    default_node = nodes[1] if len(nodes) > 1 else _const(None)
    if default_node.const:
        default = default_node.value
        if top and len(props) == 1:
            (prop,) = props

            def var_top(data: Any) -> Any:
                value = data.get(prop)
                return default if value is None else value

            return _dyn(var_top)
        return _dyn(lambda data: _walk(data, props, default))
    default_fn = default_node.fn
    return _dyn(lambda data: _walk(data, props, default_fn(data)))


def _c_equals(negate: bool) -> Callable[[list[_Node], bool, str], _Node | None]:
    def compile_(nodes: list[_Node], top: bool, path: str) -> _Node | None:
        if len(nodes) != 2:
            return None
        a, b = nodes
        if a.const == b.const:
            return None
        const_first = a.const
        value = a.value if const_first else b.value
        other = b.fn if const_first else a.fn
        vtype = type(value)
        if vtype in (list, dict):
            return None
        if const_first:

            def eq(data: Any) -> bool:
                x = other(data)
                return value == x if type(x) is vtype else op_equals(None, value, x)

        else:

            def eq(data: Any) -> bool:
                x = other(data)
                return x == value if type(x) is vtype else op_equals(None, x, value)

        if not negate:
            return _dyn(eq, True)
        return _dyn(lambda data: not eq(data), True)

    return compile_


def _c_compare(cmp: Callable[[Any, Any], bool]) -> Callable[[list[_Node], bool, str], _Node | None]:
    def compile_(nodes: list[_Node], top: bool, path: str) -> _Node | None:
        if len(nodes) != 2 or not nodes[1].const or nodes[0].const:
            return None
        subject = nodes[0].fn
        bound = nodes[1].value
        if isinstance(bound, _NUMERIC) and not isinstance(bound, bool):

            def fn(data: Any) -> bool:
                x = subject(data)
                if type(x) is int or type(x) is float:
                    return cmp(x, bound)
                return _compare(x, bound, cmp)

        elif type(bound) is str:

            def fn(data: Any) -> bool:
                x = subject(data)
                if type(x) is str:
                    return cmp(x, bound)
                return _compare(x, bound, cmp)

        else:
            return None
        return _dyn(fn, True)

    return compile_


def _c_in(nodes: list[_Node], top: bool, path: str) -> _Node | None:
    if len(nodes) < 2 or not nodes[1].const or _extras_dynamic(nodes, 2):
        return None
    needle = nodes[0].fn
    haystack = nodes[1].value
    if isinstance(haystack, list):
        members = tuple(haystack)
        hashable = frozenset(m for m in members if type(m) in _HASHABLE)

        def in_list(data: Any) -> bool:
            x = needle(data)
            if type(x) in _HASHABLE:
                return x in hashable
            return x in members

        return _dyn(in_list, True)
    if isinstance(haystack, str):

        def in_str(data: Any) -> bool:
            x = needle(data)
            return (x if type(x) is str else to_string(x)) in haystack

        return _dyn(in_str, True)
    return None


def _c_string_comp(method: str) -> Callable[[list[_Node], bool, str], _Node | None]:
    def compile_(nodes: list[_Node], top: bool, path: str) -> _Node | None:
        if len(nodes) != 2:
            raise FlagdParseError(f"{path} takes exactly 2 arguments, got {len(nodes)}")
        subject, affix = nodes
        if not affix.const:
            return None
        if not isinstance(affix.value, str):
            raise FlagdParseError(f"{path}: the second argument must be a string")
        if subject.const:
            return None
        get = subject.fn
        text = affix.value
        check = getattr(str, method)

        def fn(data: Any) -> bool | None:
            x = get(data)
            return check(x, text) if isinstance(x, str) else None

        return _dyn(fn, True)

    return compile_


def _c_sem_ver(nodes: list[_Node], top: bool, path: str) -> _Node | None:
    if len(nodes) != 3:
        raise FlagdParseError(f"{path} takes exactly 3 arguments, got {len(nodes)}")
    subject, op_node, target = nodes
    if op_node.const and op_node.value not in SEMVER_OPERATORS:
        raise FlagdParseError(
            f"{path}: unsupported operator {op_node.value!r} "
            f"(one of {', '.join(sorted(SEMVER_OPERATORS))})"
        )
    if not target.const:
        return None
    try:
        version = normalize_version(target.value)
    except ValueError as exc:
        raise FlagdParseError(f"{path}: {target.value!r} is not a version ({exc})") from None
    if subject.const or not op_node.const:
        return None
    compare = _SEMVER_COMPARE[op_node.value]
    get = subject.fn
    cache: dict[str, bool | None] = {}

    def fn(data: Any) -> bool | None:
        x = get(data)
        text = x if type(x) is str else str(x)
        result = cache.get(text, _MISS)
        if result is _MISS:
            try:
                result = compare(normalize_version(text), version)
            except ValueError:
                result = None
            if len(cache) >= _CACHE_LIMIT:
                cache.clear()
            cache[text] = result
        return result

    return _dyn(fn, True)


def _c_regex(nodes: list[_Node], top: bool, path: str) -> _Node:
    if len(nodes) != 2:
        raise FlagdParseError(f"{path} takes exactly 2 arguments (value, pattern)")
    subject, pattern = nodes
    if not pattern.const or not isinstance(pattern.value, str):
        raise FlagdParseError(f"{path}: the pattern must be a constant string")
    if len(pattern.value) > MAX_REGEX_LENGTH:
        raise FlagdParseError(
            f"{path}: the pattern is {len(pattern.value)} characters long "
            f"(at most {MAX_REGEX_LENGTH})"
        )
    try:
        search = re.compile(pattern.value).search
    except re.error as exc:
        raise FlagdParseError(f"{path}: invalid regular expression: {exc}") from None
    get = subject.fn

    def fn(data: Any) -> bool:
        x = get(data)
        return isinstance(x, str) and search(x) is not None

    return _dyn(fn, True)


def _c_fractional(nodes: list[_Node], top: bool, path: str) -> _Node | None:
    if not nodes:
        raise FlagdParseError(f"{path} needs at least one variant")
    first = nodes[0]
    shorthand = first.const and isinstance(first.value, list)
    if first.const and not shorthand and first.value is None:
        raise FlagdParseError(f"{path}: the bucketing value is null")
    weighted = nodes if shorthand else nodes[1:]
    if not weighted:
        raise FlagdParseError(f"{path} needs at least one variant")
    for i, node in enumerate(weighted, start=0 if shorthand else 1):
        if node.const and _parse_fraction(node.value) is None:
            raise FlagdParseError(
                f"{path}[{i}]: a variant must be [variant] or [variant, integer weight], "
                f"got {node.value!r}"
            )
    if not all(node.const for node in weighted):
        return None
    parsed = _fraction_table([node.value for node in weighted])
    if shorthand:
        if parsed is None:  # weights sum to 0 or overflow: always null

            def never(data: Any) -> None:
                _shorthand_key(data)  # still reads the data, so a non-object fails alike

            return _dyn(never)
        total, table = parsed

        def split(data: Any) -> Any:
            hash_key = _shorthand_key(data)
            return None if hash_key is None else _pick(hash_key, total, table)

        return _dyn(split)
    bucket_by = first.fn
    rest = [node.value for node in weighted]

    def split_by(data: Any) -> Any:
        value = bucket_by(data)
        if isinstance(value, (list, tuple)):  # decided at run time, as the reference does
            return op_fractional(data, value, *rest)
        if value is None or parsed is None:
            return None
        hash_key = _cbor_key(value)
        return None if hash_key is None else _pick(hash_key, *parsed)

    return _dyn(split_by)


def _c_not(negate: bool) -> Callable[[list[_Node], bool, str], _Node | None]:
    def compile_(nodes: list[_Node], top: bool, path: str) -> _Node | None:
        if not nodes or nodes[0].const or _extras_dynamic(nodes, 1):
            return None
        get = nodes[0].fn
        if nodes[0].boolish:
            if negate:
                return _dyn(lambda data: not get(data), True)
            return _dyn(lambda data: bool(get(data)), True)
        if negate:
            return _dyn(lambda data: not to_bool(get(data)), True)
        return _dyn(lambda data: to_bool(get(data)), True)

    return compile_


_SPECIAL_COMPILERS: dict[str, Callable[[list[_Node], bool, str], _Node | None]] = {
    "var": _c_var,
    "==": _c_equals(False),
    "!=": _c_equals(True),
    "<": _c_compare(_lt),
    ">": _c_compare(_gt),
    "<=": _c_compare(_le),
    ">=": _c_compare(_ge),
    "in": _c_in,
    "starts_with": _c_string_comp("startswith"),
    "ends_with": _c_string_comp("endswith"),
    "sem_ver": _c_sem_ver,
    "regex": _c_regex,
    "fractional": _c_fractional,
    "!": _c_not(True),
    "!!": _c_not(False),
}


# --- tracking where the result came from (flagd reason SPLIT) ----------------------------------


def _tracked(expr: Any, path: str) -> TrackedRule:
    """Compile expr so that it also says whether its value came straight out of a fractional."""
    op, args = _split(expr)
    if op == "fractional":
        fn = _compile(expr, True, path).fn
        return lambda data: (fn(data), True)
    if op in ("if", "?:") and len(args) > 1:
        where = f"{path}.{op}"
        conds = [_compile(args[i], True, f"{where}[{i}]") for i in range(0, len(args) - 1, 2)]
        thens = [_tracked(args[i], f"{where}[{i}]") for i in range(1, len(args), 2)]
        branches = tuple(zip((c.fn for c in conds), (c.boolish for c in conds), thens, strict=True))
        otherwise = _tracked(args[-1], f"{where}[{len(args) - 1}]") if len(args) % 2 else None

        def if_(data: Any) -> tuple[Any, bool]:
            for cond, cond_boolish, then in branches:
                value = cond(data)
                if value if cond_boolish else to_bool(value):
                    return then(data)
            return (None, False) if otherwise is None else otherwise(data)

        return if_
    if op in ("if", "?:") and len(args) == 1:
        return _tracked(args[0], f"{path}.{op}[0]")
    if op in ("and", "or") and args:
        operands = tuple(_tracked(arg, f"{path}.{op}[{i}]") for i, arg in enumerate(args))
        stop = op == "or"

        def and_or(data: Any) -> tuple[Any, bool]:
            result: tuple[Any, bool] = (None, False)
            for operand in operands:
                result = operand(data)
                if to_bool(result[0]) is stop:
                    return result
            return result

        return and_or
    fn = _compile(expr, True, path).fn
    return lambda data: (fn(data), False)


# --- public API -------------------------------------------------------------------------------


def compile_logic(expr: Any) -> Rule:
    """Compile a JsonLogic expression into a function of the data (a dict).

    The data is what flagd hands JsonLogic: the context attributes, ``targetingKey`` and
    ``$flagd`` (``flagKey``, ``timestamp``). Raises FlagdParseError for unknown operators and
    malformed expressions.
    """
    try:
        return _compile(expr, True, "$").fn
    except RecursionError:
        raise FlagdParseError("expression is nested too deeply") from None


def compile_targeting(expr: Any) -> TrackedRule:
    """Like compile_logic, but the function returns (value, came_from_fractional)."""
    try:
        return _tracked(expr, "$")
    except RecursionError:
        raise FlagdParseError("expression is nested too deeply") from None


def operators_used(expr: Any) -> set[str]:
    """Names of the operators in expr, in the positions the evaluator treats as operations."""
    found: set[str] = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        op, args = _split(node)
        if op is None:
            continue
        found.add(op)
        if op == "reduce":
            args = args[:2]  # the initial value is never evaluated
        stack.extend(args)
    return found
