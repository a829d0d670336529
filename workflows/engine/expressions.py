"""Safe expressions and templates: the only way expert-authored logic runs inside the engine.

You are in the engine's locked room. Rubric conditions, rule conditions, expression tools and
decision arguments are written by experts in a browser, so they are untrusted text. They are
parsed once with :mod:`ast`, checked against a whitelist of node types, names, operators and
functions, and then evaluated by a locked-down :class:`simpleeval.SimpleEval` walking the
pre-parsed tree on every call. Nothing here calls ``eval``/``exec``, reads attributes of Python
objects or formats strings with ``str.format``:

- ``a.b`` reads key ``"b"`` of dict ``a`` (dotted access into dicts only);
- only ``min max abs round len days_between date lower upper contains`` can be called;
- names and keys starting with ``_``, imports, lambdas, comprehensions, f-strings, ``%``
  formatting, bitwise operators and walrus assignments are refused at compile time;
- huge exponents, huge products and huge strings are refused at evaluation time.

Every failure, at compile or evaluation time, is an :class:`ExpressionError` whose message names
the offending construct.
"""

from __future__ import annotations

import ast
import operator
import re
import threading
import warnings
from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from simpleeval import SimpleEval

from .errors import ExpressionError

__all__ = [
    "FUNCTION_NAMES",
    "Expression",
    "compile_expression",
    "format_value",
    "render_template",
]

MAX_SOURCE_LENGTH = 4_000
MAX_NODES = 1_000
MAX_DEPTH = 64
MAX_STRING_LENGTH = 10_000
MAX_INT_BITS = 10_000

# Attribute names refused even though dotted access only reads dict keys: they are the classic
# sandbox-escape vocabulary, and refusing them by name gives the author a clear message.
_FORBIDDEN_ATTRIBUTES = frozenset(
    {"format", "format_map", "mro", "tb_frame", "gi_frame", "ag_frame", "cr_frame", "exec", "func_globals"}
)
_DICT_TYPES = (dict, MappingProxyType)
_NUMBER_TYPES = (int, float)
_SIZED_TYPES = (str, list, tuple)


# --------------------------------------------------------------------------- functions


def _as_date(value: Any) -> date:
    if type(value) is str:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ExpressionError(f"not an ISO date (yyyy-mm-dd): {value[:40]!r}") from None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise ExpressionError(f"not a date: {type(value).__name__}")


def days_between(start: Any, end: Any) -> int:
    """Whole days from ``start`` to ``end`` (``end - start``); ISO strings or dates."""
    return (_as_date(end) - _as_date(start)).days


def _date(value: Any) -> date:
    return _as_date(value)


def _lower(value: Any) -> str:
    if type(value) is not str:
        raise ExpressionError(f"lower() needs a string, got {type(value).__name__}")
    return value.lower()


def _upper(value: Any) -> str:
    if type(value) is not str:
        raise ExpressionError(f"upper() needs a string, got {type(value).__name__}")
    return value.upper()


def _contains(container: Any, item: Any) -> bool:
    """Case-insensitive substring test for strings, membership for lists and dict keys."""
    if type(container) is str and type(item) is str:
        return item.lower() in container.lower()
    if isinstance(container, (list, tuple, dict, MappingProxyType)):
        return item in container
    raise ExpressionError(f"contains() needs a string, list or dict, got {type(container).__name__}")


# name -> (callable, min args, max args or None)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "min": (min, 1, None),
    "max": (max, 1, None),
    "abs": (abs, 1, 1),
    "round": (round, 1, 2),
    "len": (len, 1, 1),
    "days_between": (days_between, 2, 2),
    "date": (_date, 1, 1),
    "lower": (_lower, 1, 1),
    "upper": (_upper, 1, 1),
    "contains": (_contains, 2, 2),
}
FUNCTION_NAMES: frozenset[str] = frozenset(_FUNCTIONS)
_ALLOWED_CALLS = ", ".join(sorted(_FUNCTIONS))


# --------------------------------------------------------------------------- operators


def _too_long(size: int) -> ExpressionError:
    return ExpressionError(f"result too long: {size} items (at most {MAX_STRING_LENGTH})")


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, _SIZED_TYPES) and isinstance(right, _SIZED_TYPES):
        size = len(left) + len(right)
        if size > MAX_STRING_LENGTH:
            raise _too_long(size)
    return left + right


def _mul(left: Any, right: Any) -> Any:
    if isinstance(left, _SIZED_TYPES) or isinstance(right, _SIZED_TYPES):
        sized, times = (left, right) if isinstance(left, _SIZED_TYPES) else (right, left)
        if isinstance(times, int) and len(sized) * times > MAX_STRING_LENGTH:
            raise _too_long(len(sized) * times)
    elif type(left) is int and type(right) is int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"number too large: product exceeds {MAX_INT_BITS} bits")
    return left * right


def _pow(base: Any, exponent: Any) -> Any:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        # Estimate the result's size before computing it: 9**9**9 must not start.
        if base.bit_length() * exponent > MAX_INT_BITS:
            raise ExpressionError(f"exponent too large: {base} ** {exponent}")
    elif isinstance(exponent, _NUMBER_TYPES) and abs(exponent) > MAX_INT_BITS:
        raise ExpressionError(f"exponent too large: {exponent}")
    result = base**exponent
    if isinstance(result, complex):
        raise ExpressionError(f"complex result: {base} ** {exponent}")
    return result


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise ExpressionError("string formatting with % is not allowed")
    return left % right


def _contained_in(item: Any, container: Any) -> bool:
    return item in container


def _not_contained_in(item: Any, container: Any) -> bool:
    return item not in container


_BINARY_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: operator.sub,
    ast.Mult: _mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _mod,
    ast.Pow: _pow,
}
_UNARY_OPERATORS: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_COMPARE_OPERATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: _contained_in,
    ast.NotIn: _not_contained_in,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_OPERATOR_SYMBOLS = {
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
}


# --------------------------------------------------------------------------- compile-time checks

_REFUSED_NODES: dict[type, str] = {
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
}
_CONSTANT_TYPES = (bool, int, float, str, type(None))


class _Checker:
    """Walks a parsed tree once and refuses anything outside the whitelist."""

    __slots__ = ("count", "free_names", "known_names")

    def __init__(self, known_names: Collection[str] | None) -> None:
        self.known_names = known_names
        self.free_names: set[str] = set()
        self.count = 0

    def check(self, node: ast.AST, depth: int = 0) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise ExpressionError(f"expression is too long (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")
        kind = type(node)
        refused = _REFUSED_NODES.get(kind)
        if refused is not None:
            raise ExpressionError(refused)
        method = getattr(self, f"_check_{kind.__name__}", None)
        if method is None:
            raise ExpressionError(f"{kind.__name__} is not allowed in expressions")
        method(node, depth + 1)

    def _check_Expression(self, node: ast.Expression, depth: int) -> None:
        self.check(node.body, depth)

    def _check_Constant(self, node: ast.Constant, depth: int) -> None:
        value = node.value
        if not isinstance(value, _CONSTANT_TYPES):
            raise ExpressionError(f"{type(value).__name__} literals are not allowed")
        if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            raise ExpressionError(f"string literal too long ({len(value)} characters)")
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise ExpressionError("number literal too large")

    def _check_Name(self, node: ast.Name, depth: int) -> None:
        if node.id.startswith("_"):
            raise ExpressionError(f"names starting with '_' are not allowed: {node.id}")
        if not isinstance(node.ctx, ast.Load):
            raise ExpressionError("assignment is not allowed")
        if self.known_names is not None and node.id not in self.known_names:
            raise ExpressionError(f"name {node.id!r} is not defined")
        self.free_names.add(node.id)

    def _check_Attribute(self, node: ast.Attribute, depth: int) -> None:
        # Innermost first, so `().__class__.__bases__` is refused at `__class__`.
        self.check(node.value, depth)
        if node.attr.startswith("_") or node.attr in _FORBIDDEN_ATTRIBUTES:
            raise ExpressionError(f"attribute access is not allowed: {node.attr}")
        if not isinstance(node.value, (ast.Name, ast.Attribute, ast.Subscript)):
            raise ExpressionError(
                f"attribute access is not allowed: .{node.attr} (dotted access only reads keys of dicts)"
            )
        if not isinstance(node.ctx, ast.Load):
            raise ExpressionError("assignment is not allowed")

    def _check_Subscript(self, node: ast.Subscript, depth: int) -> None:
        if not isinstance(node.ctx, ast.Load):
            raise ExpressionError("assignment is not allowed")
        self.check(node.value, depth)
        self.check(node.slice, depth)

    def _check_Slice(self, node: ast.Slice, depth: int) -> None:
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self.check(part, depth)

    def _check_BinOp(self, node: ast.BinOp, depth: int) -> None:
        if type(node.op) not in _BINARY_OPERATORS:
            symbol = _OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise ExpressionError(f"operator {symbol} is not allowed")
        self.check(node.left, depth)
        self.check(node.right, depth)

    def _check_UnaryOp(self, node: ast.UnaryOp, depth: int) -> None:
        if type(node.op) not in _UNARY_OPERATORS:
            symbol = _OPERATOR_SYMBOLS.get(type(node.op), type(node.op).__name__)
            raise ExpressionError(f"operator {symbol} is not allowed")
        self.check(node.operand, depth)

    def _check_BoolOp(self, node: ast.BoolOp, depth: int) -> None:
        for value in node.values:
            self.check(value, depth)

    def _check_Compare(self, node: ast.Compare, depth: int) -> None:
        self.check(node.left, depth)
        for comparator in node.comparators:
            self.check(comparator, depth)

    def _check_IfExp(self, node: ast.IfExp, depth: int) -> None:
        self.check(node.test, depth)
        self.check(node.body, depth)
        self.check(node.orelse, depth)

    def _check_Call(self, node: ast.Call, depth: int) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr.startswith("_") or func.attr in _FORBIDDEN_ATTRIBUTES:
                raise ExpressionError(f"attribute access is not allowed: {func.attr}")
            raise ExpressionError(
                f"calling methods is not allowed: .{func.attr}() (allowed: {_ALLOWED_CALLS})"
            )
        if not isinstance(func, ast.Name):
            raise ExpressionError(f"only named functions can be called (allowed: {_ALLOWED_CALLS})")
        spec = _FUNCTIONS.get(func.id)
        if spec is None:
            raise ExpressionError(f"calling {func.id!r} is not allowed (allowed: {_ALLOWED_CALLS})")
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed: {func.id}()")
        _, least, most = spec
        count = len(node.args)
        if count < least or (most is not None and count > most):
            expected = (
                f"{least}" if least == most else f"{least} or more" if most is None else f"{least}-{most}"
            )
            raise ExpressionError(f"{func.id}() takes {expected} argument(s), got {count}")
        for argument in node.args:
            self.check(argument, depth)

    def _check_List(self, node: ast.List, depth: int) -> None:
        for element in node.elts:
            self.check(element, depth)

    _check_Tuple = _check_List


def _syntax_problem(text: str, error: SyntaxError) -> str:
    """Explain why ``text`` is not a single expression, naming statements authors try."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        column = f" (column {error.offset})" if error.offset else ""
        return f"invalid syntax: {error.msg}{column}"
    statement = module.body[0] if module.body else None
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return "import is not allowed"
    if isinstance(statement, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return "assignment is not allowed"
    if len(module.body) > 1:
        return "only a single expression is allowed"
    return f"{type(statement).__name__.lower()} statements are not allowed"


def _parse(source: str) -> ast.Expression:
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, got {type(source).__name__}")
    text = source.strip()
    if not text:
        raise ExpressionError("expression is empty")
    if len(text) > MAX_SOURCE_LENGTH:
        raise ExpressionError(f"expression is too long ({len(text)} characters, at most {MAX_SOURCE_LENGTH})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning/DeprecationWarning for odd literals
            return ast.parse(text, mode="eval")
    except SyntaxError as error:
        raise ExpressionError(_syntax_problem(text, error)) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as error:
        raise ExpressionError(f"invalid expression: {type(error).__name__}: {str(error)[:120]}") from None


# --------------------------------------------------------------------------- evaluation


class _Evaluator(SimpleEval):
    """simpleeval with only the whitelisted node handlers and dict-only dotted access.

    The default ``_eval`` re-checks every intermediate value against simpleeval's list of
    forbidden functions and modules; here the compile-time checker already guarantees that only
    whitelisted functions are ever called and that no Python attribute is ever read, so the
    check is dead weight on the hot path and is skipped. Handlers dispatch on their children
    through ``self.nodes`` directly (one Python frame per node instead of two): evaluation is
    on the environment's hot path.
    """

    def __init__(self) -> None:
        super().__init__(
            operators={**_BINARY_OPERATORS, **_UNARY_OPERATORS, **_COMPARE_OPERATORS},
            functions={name: spec[0] for name, spec in _FUNCTIONS.items()},
            names={},
        )
        # Replace simpleeval's handler table: a node type not listed here cannot be evaluated
        # even if the checker let it through.
        self.nodes = {
            ast.Constant: self._eval_constant,
            ast.Name: self._eval_name,
            ast.Attribute: self._eval_attribute,
            ast.Subscript: self._eval_subscript,
            ast.Slice: self._eval_slice,
            ast.BinOp: self._eval_binop,
            ast.UnaryOp: self._eval_unaryop,
            ast.BoolOp: self._eval_boolop,
            ast.Compare: self._eval_compare,
            ast.IfExp: self._eval_ifexp,
            ast.Call: self._eval_call,
            ast.List: self._eval_list,
            ast.Tuple: self._eval_tuple,
        }

    def _eval(self, node: ast.AST) -> Any:
        return self.nodes[type(node)](node)

    @staticmethod
    def _eval_constant(node: ast.Constant) -> Any:
        return node.value

    def _eval_name(self, node: ast.Name) -> Any:
        try:
            return self.names[node.id]
        except KeyError:
            raise ExpressionError(f"name {node.id!r} is not defined") from None

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        value = node.value
        container = self.nodes[type(value)](value)
        if type(container) is dict or type(container) is MappingProxyType:
            try:
                return container[node.attr]
            except KeyError:
                raise ExpressionError(f"{ast.unparse(value)} has no key {node.attr!r}") from None
        raise ExpressionError(
            f"attribute access is not allowed: .{node.attr} on {type(container).__name__} "
            f"({ast.unparse(value)} is not a dict)"
        )

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        nodes = self.nodes
        value, key = node.value, node.slice
        return nodes[type(value)](value)[nodes[type(key)](key)]

    def _eval_binop(self, node: ast.BinOp) -> Any:
        nodes = self.nodes
        left, right = node.left, node.right
        return self.operators[type(node.op)](nodes[type(left)](left), nodes[type(right)](right))

    def _eval_unaryop(self, node: ast.UnaryOp) -> Any:
        operand = node.operand
        return self.operators[type(node.op)](self.nodes[type(operand)](operand))

    def _eval_boolop(self, node: ast.BoolOp) -> Any:
        nodes = self.nodes
        result: Any = None
        if type(node.op) is ast.And:
            for value in node.values:
                result = nodes[type(value)](value)
                if not result:
                    return result
            return result
        for value in node.values:
            result = nodes[type(value)](value)
            if result:
                return result
        return result

    def _eval_compare(self, node: ast.Compare) -> Any:
        nodes, operators = self.nodes, self.operators
        left = node.left
        if len(node.ops) == 1:  # the common case, without the loop
            right = node.comparators[0]
            return operators[type(node.ops[0])](nodes[type(left)](left), nodes[type(right)](right))
        right_value = nodes[type(left)](left)
        result: Any = True
        for operation, comparator in zip(node.ops, node.comparators, strict=True):
            left_value = right_value
            right_value = nodes[type(comparator)](comparator)
            result = operators[type(operation)](left_value, right_value)
            if not result:
                return result
        return result

    def _eval_ifexp(self, node: ast.IfExp) -> Any:
        nodes = self.nodes
        test = node.test
        branch = node.body if nodes[type(test)](test) else node.orelse
        return nodes[type(branch)](branch)

    def _eval_call(self, node: ast.Call) -> Any:
        nodes = self.nodes
        function = self.functions[node.func.id]  # type: ignore[attr-defined]
        return function(*[nodes[type(argument)](argument) for argument in node.args])

    def _eval_list(self, node: ast.List) -> list[Any]:
        nodes = self.nodes
        return [nodes[type(element)](element) for element in node.elts]

    def _eval_tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        nodes = self.nodes
        return tuple([nodes[type(element)](element) for element in node.elts])


# One evaluator per thread: SimpleEval keeps the names being evaluated on the instance.
_local = threading.local()


def _describe(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return f"key {error.args[0]!r} not found" if error.args else "key not found"
    if isinstance(error, ZeroDivisionError):
        return "division by zero"
    if isinstance(error, RecursionError):
        return "expression is nested too deeply"
    if isinstance(error, (OverflowError, MemoryError)):
        return "number too large"
    return f"{type(error).__name__}: {str(error)[:160]}"


class Expression:
    """A compiled, immutable expression; evaluate it as often as you like."""

    __slots__ = ("_body", "_kind", "names", "source")

    def __init__(self, source: str, tree: ast.Expression, names: frozenset[str]) -> None:
        self.source = source
        self._body = tree.body
        self._kind = type(tree.body)
        self.names = names  # the top-level names it reads

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            evaluator = _local.evaluator
        except AttributeError:
            evaluator = _local.evaluator = _Evaluator()
        # No need to restore the previous names: whitelisted functions never evaluate expressions.
        evaluator.names = context
        try:
            return evaluator.nodes[self._kind](self._body)
        except ExpressionError as error:
            raise ExpressionError(f"{error} in {self.source!r}") from None
        except Exception as error:  # untrusted input: any failure becomes an ExpressionError
            raise ExpressionError(f"{_describe(error)} in {self.source!r}") from None


def compile_expression(source: str, *, names: Collection[str] | None = None) -> Expression:
    """Parse and check ``source`` once; with ``names``, unknown top-level names are refused."""
    tree = _parse(source)
    checker = _Checker(names)
    try:
        checker.check(tree)
    except RecursionError:
        raise ExpressionError("expression is nested too deeply") from None
    return Expression(source.strip(), tree, frozenset(checker.free_names))


# --------------------------------------------------------------------------- templates

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_PATH = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9][A-Za-z0-9_]*)*")


def format_value(value: Any) -> str:
    """Human-readable rendering used by templates and rubric reasons: 4120.5 -> '4,120.50'."""
    if value is None:
        return "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(item) for item in value) or "none"
    if isinstance(value, date):
        return value.isoformat()
    return "?"


@lru_cache(maxsize=2048)
def _template_parts(template: str) -> tuple[str | tuple[str, ...], ...]:
    """Split a template into literal strings and key paths (tuples), once per template."""
    parts: list[str | tuple[str, ...]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        parts.append(template[position : match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        else:
            path = match.group(1).strip()
            # An unusable placeholder renders as "?" (empty path never matches a key).
            parts.append(tuple(path.split(".")) if _PATH.fullmatch(path) else ("",))
        position = match.end()
    parts.append(template[position:])
    return tuple(part for part in parts if part != "")


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Replace ``{a.b.c}`` by dict look-ups in ``context``; unknown placeholders render as ``?``.

    ``{{`` and ``}}`` are literal braces. Values are formatted by :func:`format_value`; no
    ``str.format`` is ever involved, so a template cannot reach attributes.
    """
    out: list[str] = []
    for part in _template_parts(template):
        if type(part) is str:
            out.append(part)
            continue
        value: Any = context.get(part[0], _MISSING)
        for key in part[1:]:
            if type(value) is dict or type(value) is MappingProxyType:
                value = value.get(key, _MISSING)
            else:
                value = _MISSING
                break
        out.append("?" if value is _MISSING else format_value(value))
    return "".join(out)


_MISSING = object()
