"""The safe expression language: what it computes, what it refuses, and that fuzzing cannot break out."""

from __future__ import annotations

import ast
import builtins
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.engine import ExpressionError, compile_expression, render_template

CONTEXT = {
    "amount_claimed": 4_120.0,
    "incident_date": "2024-03-01",
    "report_date": "2024-04-01",
    "claim_type": "collision",
    "photos": 3,
    "check_coverage": {
        "limit": 20_000.0,
        "deductible": 500.0,
        "in_force": True,
        "perils": ["collision", "glass"],
    },
    "lookup_policy": {"found": True, "status": "active", "holder": {"name": "Ada"}},
    "x": {"a": 1},
    "text": "Hello World",
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("7 // 2 + 7 % 2 + 2 ** 3", 12),
        ("-amount_claimed + 5", -4_115.0),
        ("max(0, min(amount_claimed, check_coverage.limit) - check_coverage.deductible)", 3_620.0),
        ("round(amount_claimed / 3, 2)", 1_373.33),
        ("abs(-2) + len(check_coverage.perils)", 4),
        ("days_between(incident_date, report_date)", 31),
        ("days_between(incident_date, report_date) > 30", True),
        ("date(report_date) > date(incident_date)", True),
        ("lookup_policy.holder.name", "Ada"),
        ("check_coverage['perils'][0]", "collision"),
        ("claim_type in ['collision', 'theft']", True),
        ("claim_type not in ('fire',)", True),
        ("'glass' in check_coverage.perils", True),
        ("contains(text, 'world') and not contains(text, 'moon')", True),
        ("lower(claim_type) == 'collision' and upper('a') == 'A'", True),
        ("'yes' if check_coverage.in_force else 'no'", "yes"),
        ("photos >= 3 or 1 / 0", True),  # short-circuit: the division never runs
        ("1 < photos <= 3", True),
        ("lookup_policy.status != 'active' and 1 / 0", False),
        ("None is None and x.a is not None", True),
        ("text[0:5]", "Hello"),
    ],
)
def test_expressions_compute_what_an_expert_expects(source: str, expected: object) -> None:
    assert compile_expression(source).evaluate(CONTEXT) == expected


def test_an_expression_is_parsed_once_and_evaluated_many_times() -> None:
    expression = compile_expression("amount * 2")
    assert [expression.evaluate({"amount": value}) for value in (1, 2, 3)] == [2, 4, 6]
    assert expression.source == "amount * 2"
    assert expression.names == frozenset({"amount"})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("().__class__.__bases__", "attribute access is not allowed: __class__"),
        ("x.__class__", "attribute access is not allowed: __class__"),
        ("x.__dict__", "attribute access is not allowed: __dict__"),
        ("__import__('os')", "calling '__import__' is not allowed"),
        ("__builtins__", "names starting with '_' are not allowed: __builtins__"),
        ("10 ** 100000", "exponent too large"),
        ("[1] * 10**6", "result too long"),
        ("'a' * 9000 + 'b' * 9000", "result too long"),
        ("[x for x in range(10**9)]", "comprehensions are not allowed"),
        ("{k: 1 for k in 'ab'}", "comprehensions are not allowed"),
        ("(y for y in x)", "comprehensions are not allowed"),
        ("lambda: 1", "lambda is not allowed"),
        ("x.format", "attribute access is not allowed: format"),
        ("x.format()", "attribute access is not allowed: format"),
        ("'{0.__class__}'.format(x)", "attribute access is not allowed: format"),
        ("open('f')", "calling 'open' is not allowed"),
        ("eval('1')", "calling 'eval' is not allowed"),
        ("getattr(x, 'a')", "calling 'getattr' is not allowed"),
        ("type(x)", "calling 'type' is not allowed"),
        ("'abc'.upper()", "calling methods is not allowed"),
        ("text.upper", "attribute access is not allowed: .upper on str"),
        ("photos.real", "attribute access is not allowed: .real on int"),
        ("(1).real", "attribute access is not allowed: .real"),
        ("import os", "import is not allowed"),
        ("from os import system", "import is not allowed"),
        ("x = 1", "assignment is not allowed"),
        ("(y := 1)", "assignment (:=) is not allowed"),
        ("'%s%s' % (1, 2)", "string formatting with % is not allowed"),
        ("f'{x}'", "f-strings are not allowed"),
        ("1 << 64", "operator << is not allowed"),
        ("~1", "operator ~ is not allowed"),
        ("{'a': 1}", "dict literals are not allowed"),
        ("max(*[1, 2])", "'*' unpacking is not allowed"),
        ("round(1.5, ndigits=1)", "keyword arguments are not allowed"),
        ("days_between('2024-01-01')", "days_between() takes 2 argument(s), got 1"),
        ("1j", "complex literals are not allowed"),
        ("b'x'", "bytes literals are not allowed"),
        ("1; 2", "only a single expression is allowed"),
        ("", "expression is empty"),
        ("1 +", "invalid syntax"),
        ("(-1) ** 0.5", "complex result"),
        ("foo + 1", "name 'foo' is not defined"),
        ("x.b", "x has no key 'b'"),
        ("1 / 0", "division by zero"),
        ("days_between('2024-13-01', incident_date)", "not an ISO date"),
        ("'a' + 1", "TypeError"),
        ("-" * 300 + "1", "nested too deeply"),
        ("1" + "+1" * 2_500, "too long"),
    ],
)
def test_attacks_and_mistakes_are_refused_with_a_clear_message(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as refused:
        compile_expression(source).evaluate(CONTEXT)
    assert message in str(refused.value)


RESOURCE_ATTACKS = ["9**9**9", "(10**100)**(10**100)", "'a'*10**9", "[0]*10**8", "2**10000*2**10000*2**10000"]


def test_resource_attacks_are_refused_quickly() -> None:
    # In a subprocess with a deadline: a missing limit would hang or eat memory rather than fail.
    probe = (
        "import sys\n"
        "from workflows.engine import ExpressionError, compile_expression\n"
        "for source in sys.argv[1:]:\n"
        "    try:\n"
        "        compile_expression(source).evaluate({})\n"
        "        print('EVALUATED', source)\n"
        "    except ExpressionError as error:\n"
        "        print('REFUSED', error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *RESOURCE_ATTACKS],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == len(RESOURCE_ATTACKS)
    assert all(line.startswith("REFUSED") for line in lines), lines
    assert "exponent too large" in lines[0] and "result too long" in lines[2]


def test_unknown_names_are_refused_at_compile_time_when_names_are_given() -> None:
    with pytest.raises(ExpressionError, match="name 'check_coverag' is not defined"):
        compile_expression("check_coverag.limit > 0", names={"check_coverage"})
    assert compile_expression("check_coverage.limit > 0", names={"check_coverage"})


def test_dotted_access_reads_dict_keys_not_python_attributes() -> None:
    # A dict key called "keys" is data; the dict's .keys method is never reachable.
    assert compile_expression("d.keys").evaluate({"d": {"keys": 3}}) == 3
    with pytest.raises(ExpressionError, match="has no key 'items'"):
        compile_expression("d.items").evaluate({"d": {"keys": 3}})
    with pytest.raises(ExpressionError, match=r"attribute access is not allowed: \.year on date"):
        compile_expression("d.year").evaluate({"d": date(2024, 1, 1)})


# --------------------------------------------------------------------------- templates


def test_templates_fill_placeholders_by_dict_lookup() -> None:
    rendered = render_template(
        "Policy {lookup_policy.status}, limit {check_coverage.limit}, {photos} photos, "
        "in force: {check_coverage.in_force}, perils {check_coverage.perils}, {{literal}}",
        CONTEXT,
    )
    assert rendered == (
        "Policy active, limit 20,000.00, 3 photos, in force: yes, perils collision, glass, {literal}"
    )


@pytest.mark.parametrize(
    "template",
    [
        "{x.__class__}",
        "{x.format}",
        "{0}",
        "{x.a!r}",
        "{x.a:>10}",
        "{missing}",
        "{x.a.b}",
        "{ }",
        "{__import__}",
    ],
)
def test_unknown_or_unsafe_placeholders_render_as_question_marks(template: str) -> None:
    assert render_template(template, CONTEXT) == "?"


def test_templates_never_call_format_or_str_on_foreign_objects() -> None:
    class Booby:
        def __format__(self, spec: str) -> str:
            raise AssertionError("__format__ was called")

        def __str__(self) -> str:
            raise AssertionError("__str__ was called")

    assert render_template("value: {booby}", {"booby": Booby()}) == "value: ?"


# --------------------------------------------------------------------------- fuzzing


@contextlib.contextmanager
def python_code_execution_trapped() -> Iterator[list[str]]:
    """Record any call to eval/exec, or any compile() to bytecode, while the block runs.

    Calls are recorded (not raised) because the evaluator turns every exception into an
    ExpressionError: a raised trap would be swallowed and the test could not fail.
    """
    calls: list[str] = []
    real_eval, real_exec, real_compile = builtins.eval, builtins.exec, builtins.compile

    def trapped_eval(*args: object, **kwargs: object) -> None:
        calls.append("eval")

    def trapped_exec(*args: object, **kwargs: object) -> None:
        calls.append("exec")

    def guarded_compile(source, filename, mode, flags=0, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not flags & ast.PyCF_ONLY_AST:
            calls.append(f"compile({mode})")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    builtins.eval, builtins.exec, builtins.compile = trapped_eval, trapped_exec, guarded_compile
    try:
        yield calls
    finally:
        builtins.eval, builtins.exec, builtins.compile = real_eval, real_exec, real_compile


def compile_and_evaluate(source: str) -> None:
    """Either evaluates, or raises ExpressionError; anything else fails the test."""
    try:
        compile_expression(source).evaluate(CONTEXT)
    except ExpressionError as error:
        assert str(error)


_TOKENS = [
    *("x", "x.a", "text", "photos", "check_coverage", "lookup_policy.holder", "amount_claimed", "claim_type"),
    *("__class__", "__bases__", "__subclasses__", "__import__", "__globals__", "_x", "format", "mro"),
    *("min", "max", "abs", "round", "len", "days_between", "date", "lower", "upper", "contains"),
    *("open", "eval", "exec", "getattr", "type", "range", "print", "globals", "vars", "dir"),
    *("0", "1", "9", "10", "-1", "1.5", "1e308", "10**9", "'a'", "'%s'", "'{0}'", "''", "None", "True"),
    *("+", "-", "*", "/", "//", "%", "**", "<<", "&", "|", "~", "==", "!=", "<", ">=", "in", "not", "is"),
    *("and", "or", "if", "else", "for", "lambda", "import", "yield", "await", ":=", "=", ";"),
    *("(", ")", "[", "]", "{", "}", ".", ",", ":", "*", "f'", "'", '"', "\\", "\n", "#"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=60))
def test_random_text_only_ever_raises_expression_error(source: str) -> None:
    with python_code_execution_trapped() as calls:
        compile_and_evaluate(source)
    assert calls == []


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=14).map(" ".join))
def test_random_token_soup_only_ever_raises_expression_error(source: str) -> None:
    with python_code_execution_trapped() as calls:
        compile_and_evaluate(source)
    assert calls == []


def _arithmetic() -> st.SearchStrategy[tuple[str, int]]:
    """(source, value) pairs of integer arithmetic, built with their expected value."""
    leaves = st.integers(min_value=-50, max_value=50).map(lambda n: (f"({n})", n))

    def combine(children: st.SearchStrategy[tuple[str, int]]) -> st.SearchStrategy[tuple[str, int]]:
        def build(left: tuple[str, int], op: str, right: tuple[str, int]) -> tuple[str, int]:
            value = {"+": left[1] + right[1], "-": left[1] - right[1], "*": left[1] * right[1]}[op]
            return f"({left[0]} {op} {right[0]})", value

        return st.builds(build, children, st.sampled_from(["+", "-", "*"]), children)

    return st.recursive(leaves, combine, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(_arithmetic())
def test_arithmetic_agrees_with_its_definition(pair: tuple[str, int]) -> None:
    source, value = pair
    assert compile_expression(source).evaluate({}) == value


def test_the_trap_would_notice_python_eval() -> None:
    # The fuzz tests above are only meaningful if the trap works: prove it can fail.
    with python_code_execution_trapped() as calls:
        eval("1")
        compile("1", "<x>", "eval")
    assert calls == ["eval", "compile(eval)"]
