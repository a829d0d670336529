"""Forms of the expert screens: one spec item (case field, tool, decision), one rubric criterion, the
settings of each, and the upload, import and generation forms.

You are in the editors' form room. An item form turns what an expert typed into the plain dict the
engine reads (``to_item``) and back (``initial_from``); it checks only the shape of each input
(a number is a number). Whether the item makes sense in its workflow — unknown tools, duplicate
names, expressions that do not compile — is the engine's call, made on the whole draft, and its
problems come back by path (``case_fields[3].minimum``) to be shown beside the item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from workflows.engine.rubric import CRITERION_KINDS
from workflows.engine.spec import FIELD_TYPES, TOOL_KINDS
from workflows.models import Split
from workflows.packs import pack_names

_SPLIT_WORDS = re.compile(r"[\s,]+")

CRITERION_KIND_HELP = {
    "outcome_match": "Passes when the decision taken is the expected one.",
    "field_match": "Passes when a decision argument equals the expected one (text compared ignoring case).",
    "numeric_tolerance": "Passes when a numeric argument is within an absolute or relative tolerance.",
    "required_step": "Passes when a tool was called (before the decision, unless unticked).",
    "forbidden_step": "Fails when a tool was called or a decision taken.",
    "step_order": "Passes when one tool or decision happened before another.",
    "explanation_mentions": "Scores the explanation by the terms or tool facts it cites.",
    "expression": "A safe expression: true passes, a number in [0, 1] is a partial score.",
}
# Which parameter inputs each criterion kind uses (the form shows only these).
CRITERION_PARAMS: dict[str, tuple[str, ...]] = {
    "outcome_match": (),
    "field_match": ("argument",),
    "numeric_tolerance": ("argument", "absolute", "relative"),
    "required_step": ("tool", "before_decision"),
    "forbidden_step": ("tool_or_decision",),
    "step_order": ("before", "after"),
    "explanation_mentions": ("terms", "cite_tools", "min_matches"),
    "expression": ("expression",),
}
assert set(CRITERION_PARAMS) == set(CRITERION_KINDS), "every criterion kind needs a form"
TOOL_PARAMS: dict[str, tuple[str, ...]] = {
    "lookup": ("table", "key_field", "match_column", "returns"),
    "expression": ("expression", "result_name"),
    "pack": ("pack_tool",),
}
assert set(TOOL_PARAMS) == set(TOOL_KINDS), "every tool kind needs a form"


def words(text: str) -> list[str]:
    """``"a, b\\nc"`` → ``["a", "b", "c"]``: lists typed as comma- or line-separated words."""
    return [word for word in _SPLIT_WORDS.split(text or "") if word]


def lines(text: str) -> list[str]:
    """Comma- or line-separated phrases, each stripped (terms may contain spaces)."""
    return [part.strip() for part in re.split(r"[,\n]", text or "") if part.strip()]


def _number(value: float | None) -> int | float | None:
    """Whole numbers as ints, so a spec reads ``"minimum": 0`` rather than ``0.0``."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _choices(names: Iterable[str], blank: str | None = "—") -> list[tuple[str, str]]:
    out = [("", blank)] if blank is not None else []
    return out + [(name, name) for name in names]


class Form(forms.Form):
    """Labels without a trailing colon: they read better, and screen readers announce them as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class ItemForm(Form):
    """An editor form: built from a draft item, read back into one."""

    def to_item(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def initial_from(cls, item: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


# --------------------------------------------------------------------------- workflow spec


class SpecSettingsForm(Form):
    name = forms.RegexField(
        regex=r"^[A-Za-z][A-Za-z0-9_-]{0,99}$",
        help_text="The spec's own name: letters, digits, '_' or '-'.",
        error_messages={"invalid": "Letters, digits, '_' or '-', starting with a letter."},
    )
    title = forms.CharField(max_length=200, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    max_steps = forms.IntegerField(
        min_value=1, max_value=1000, help_text="An episode without a decision ends after this many steps."
    )

    def to_settings(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "title": data["title"] or data["name"],
            "description": data["description"],
            "max_steps": data["max_steps"],
        }


class FieldItemForm(ItemForm):
    """A case field or a decision argument."""

    name = forms.CharField(max_length=64, help_text="An identifier: letters, digits and '_'.")
    type = forms.ChoiceField(choices=[(t, t) for t in FIELD_TYPES])
    required = forms.BooleanField(required=False, initial=True)
    minimum = forms.FloatField(required=False, help_text="Integer and number fields only.")
    maximum = forms.FloatField(required=False, help_text="Integer and number fields only.")
    choices = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Enum fields only: one choice per line or comma-separated.",
    )
    max_length = forms.IntegerField(required=False, min_value=1, help_text="String and text fields only.")
    description = forms.CharField(max_length=500, required=False)

    def to_item(self) -> dict[str, Any]:
        data = self.cleaned_data
        item: dict[str, Any] = {
            "name": data["name"].strip(),
            "type": data["type"],
            "required": data["required"],
        }
        for key in ("minimum", "maximum"):
            if data[key] is not None:
                item[key] = _number(data[key])
        if data["choices"].strip() or data["type"] == "enum":
            item["choices"] = words(data["choices"])
        if data["max_length"] is not None:
            item["max_length"] = data["max_length"]
        item["description"] = data["description"]
        return item

    @classmethod
    def initial_from(cls, item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": item.get("name", ""),
            "type": item.get("type", "string"),
            "required": item.get("required", True),
            "minimum": item.get("minimum"),
            "maximum": item.get("maximum"),
            "choices": "\n".join(str(choice) for choice in item.get("choices") or []),
            "max_length": item.get("max_length"),
            "description": item.get("description", ""),
        }


class ArgumentForm(FieldItemForm):
    """A decision argument row: blank rows are ignored, ``delete`` drops the row."""

    delete = forms.BooleanField(required=False, label="Remove")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name not in ("required", "delete"):
                field.required = False

    def is_blank(self) -> bool:
        return not (self.cleaned_data.get("name") or "").strip()

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if not data.get("delete") and not (data.get("name") or "").strip():
            filled = [key for key in ("minimum", "maximum", "max_length") if data.get(key) is not None]
            if filled or (data.get("choices") or "").strip() or (data.get("description") or "").strip():
                self.add_error("name", "An argument needs a name.")
        return data


ArgumentFormSet = forms.formset_factory(ArgumentForm, extra=1)


class ToolItemForm(ItemForm):
    name = forms.CharField(max_length=64, help_text="An identifier; the tool's result is revealed under it.")
    kind = forms.ChoiceField(
        choices=[
            ("lookup", "lookup: a row of a reference table"),
            ("expression", "expression: a safe formula"),
            ("pack", "pack: a tool of the workflow's pack"),
        ],
        widget=forms.Select(attrs={"data-kind-select": ""}),
    )
    description = forms.CharField(max_length=500, required=False)
    requires = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Tools that must have been called before this one.",
    )
    table = forms.CharField(max_length=80, required=False, help_text="The reference table to search.")
    key_field = forms.ChoiceField(required=False, help_text="The case field holding the key.")
    match_column = forms.CharField(
        max_length=80, required=False, help_text="The table column to match (default: the key field's name)."
    )
    returns = forms.CharField(
        required=False, help_text="Columns to reveal, comma-separated (plus 'found', always)."
    )
    expression = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}),
        help_text="Over case fields and the results of required tools, e.g. min(amount_claimed, 100).",
    )
    result_name = forms.CharField(max_length=64, required=False, initial="value")
    pack_tool = forms.CharField(max_length=80, required=False, help_text="Default: the tool's own name.")

    def __init__(
        self, *args: Any, tool_names: Sequence[str] = (), field_names: Sequence[str] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["requires"].choices = _choices(tool_names, blank=None)  # type: ignore[attr-defined]
        self.fields["key_field"].choices = _choices(field_names)  # type: ignore[attr-defined]

    def kind_fields(self) -> list[tuple[str, list[forms.BoundField]]]:
        """(kind, its inputs) for every tool kind: the template shows the chosen one."""
        return [(kind, [self[name] for name in TOOL_PARAMS[kind]]) for kind in TOOL_KINDS]

    def to_item(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind = data["kind"]
        item: dict[str, Any] = {
            "name": data["name"].strip(),
            "kind": kind,
            "description": data["description"],
        }
        if kind == "lookup":
            item |= {
                "table": data["table"].strip(),
                "key_field": data["key_field"],
                "match_column": data["match_column"].strip() or data["key_field"],
                "returns": words(data["returns"]),
            }
        elif kind == "expression":
            item |= {
                "expression": data["expression"].strip(),
                "result_name": data["result_name"].strip() or "value",
            }
        else:
            item["pack_tool"] = data["pack_tool"].strip() or item["name"]
        item["requires"] = [name for name in data["requires"] if name != item["name"]]
        return item

    @classmethod
    def initial_from(cls, item: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": item.get("name", ""),
            "kind": item.get("kind", "lookup"),
            "description": item.get("description", ""),
            "requires": list(item.get("requires") or []),
            "table": item.get("table") or "",
            "key_field": item.get("key_field") or "",
            "match_column": item.get("match_column") or "",
            "returns": ", ".join(item.get("returns") or []),
            "expression": item.get("expression") or "",
            "result_name": item.get("result_name") or "value",
            "pack_tool": item.get("pack_tool") or "",
        }


class DecisionItemForm(ItemForm):
    """A decision: name and description here; its arguments in an :data:`ArgumentFormSet`."""

    name = forms.CharField(max_length=64, help_text="An identifier, e.g. approve.")
    description = forms.CharField(max_length=500, required=False)

    def to_item(self, arguments: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[override]
        data = self.cleaned_data
        return {
            "name": data["name"].strip(),
            "description": data["description"],
            "arguments": list(arguments),
        }

    @classmethod
    def initial_from(cls, item: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": item.get("name", ""), "description": item.get("description", "")}


def argument_items(formset: forms.BaseFormSet) -> list[dict[str, Any]]:
    """The arguments a valid formset describes, blank and removed rows left out."""
    return [
        form.to_item()
        for form in formset.forms
        if form.cleaned_data and not form.cleaned_data.get("delete") and not form.is_blank()
    ]


# --------------------------------------------------------------------------- rubric


class RubricSettingsForm(Form):
    """Step cost and one shaping bonus per tool of the workflow."""

    step_cost = forms.FloatField(
        min_value=0, max_value=1, help_text="Subtracted from the reward at every step, between 0 and 1."
    )

    def __init__(self, *args: Any, tool_names: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tool_names = list(tool_names)
        for tool in self.tool_names:
            self.fields[f"shaping_{tool}"] = forms.FloatField(
                required=False,
                min_value=-1,
                max_value=1,
                label=f"Bonus for {tool}",
                help_text="Paid the first time the tool is called; leave empty for none.",
            )

    def shaping_fields(self) -> list[forms.BoundField]:
        return [self[f"shaping_{tool}"] for tool in self.tool_names]

    def apply(self, draft: dict[str, Any]) -> dict[str, Any]:
        data = self.cleaned_data
        shaping = {
            tool: _number(data[f"shaping_{tool}"])
            for tool in self.tool_names
            if data.get(f"shaping_{tool}") is not None
        }
        # Bonuses for tools the workflow no longer has stay in the draft, for the engine to point out.
        shaping |= {
            tool: bonus for tool, bonus in (draft.get("shaping") or {}).items() if tool not in self.tool_names
        }
        return {**draft, "step_cost": _number(data["step_cost"]), "shaping": shaping}

    @classmethod
    def initial_from(cls, draft: Mapping[str, Any]) -> dict[str, Any]:
        initial: dict[str, Any] = {"step_cost": draft.get("step_cost", 0.0)}
        for tool, bonus in (draft.get("shaping") or {}).items():
            initial[f"shaping_{tool}"] = bonus
        return initial


def _param_field(
    name: str, *, tools: Sequence[str], actions: Sequence[str], arguments: Sequence[str]
) -> forms.Field:
    """A fresh input for one criterion parameter (each kind gets its own, so ids never clash)."""
    match name:
        case "argument":
            return forms.ChoiceField(
                required=False, choices=_choices(arguments), help_text="The decision argument to compare."
            )
        case "absolute":
            return forms.FloatField(required=False, min_value=0, help_text="Allowed absolute difference.")
        case "relative":
            return forms.FloatField(
                required=False, min_value=0, help_text="Allowed relative difference: 0.01 is 1%."
            )
        case "tool":
            return forms.ChoiceField(required=False, choices=_choices(tools))
        case "before_decision":
            return forms.BooleanField(required=False, initial=True, label="Must happen before the decision")
        case "tool_or_decision":
            return forms.ChoiceField(required=False, choices=_choices(actions), label="Tool or decision")
        case "before":
            return forms.ChoiceField(required=False, choices=_choices(actions))
        case "after":
            return forms.ChoiceField(
                required=False,
                choices=_choices([*actions, "decision"]),
                help_text="'decision' means whichever decision was taken.",
            )
        case "terms":
            return forms.CharField(
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
                help_text="Words or phrases, one per line or comma-separated.",
            )
        case "cite_tools":
            return forms.MultipleChoiceField(
                required=False,
                choices=_choices(tools, blank=None),
                widget=forms.CheckboxSelectMultiple,
                label="Tools whose facts count",
                help_text="A fact counts when the explanation writes its value.",
            )
        case "min_matches":
            return forms.IntegerField(required=False, min_value=1, initial=1, label="Matches needed")
        case "expression":
            return forms.CharField(
                required=False,
                widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}),
                help_text="E.g. 'check_coverage' in steps and arguments.amount <= check_coverage.limit",
            )
    raise KeyError(name)


class CriterionItemForm(ItemForm):
    """One criterion. Each kind has its own parameter inputs, named ``<kind>__<parameter>``
    (:data:`CRITERION_PARAMS`); only the chosen kind's are read and checked."""

    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(
        choices=[(kind, kind.replace("_", " ")) for kind in CRITERION_KINDS],
        widget=forms.Select(attrs={"data-kind-select": ""}),
    )
    weight = forms.FloatField(
        min_value=0, initial=1, help_text="Relative weight in the mean; 0 for a pure gate."
    )
    gate = forms.BooleanField(
        required=False, help_text="A gate that applies and fails zeroes the whole score."
    )
    when = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"class": "mono"}),
        help_text="Optional condition, e.g. expected_decision == 'approve'. Empty: always applies.",
    )
    description = forms.CharField(max_length=500, required=False)

    def __init__(
        self,
        *args: Any,
        tool_names: Sequence[str] = (),
        decision_names: Sequence[str] = (),
        argument_names: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        actions = [*tool_names, *decision_names]
        for kind, params in CRITERION_PARAMS.items():
            for param in params:
                field = _param_field(param, tools=tool_names, actions=actions, arguments=argument_names)
                field.label = field.label or param.replace("_", " ").capitalize()
                self.fields[self.param_name(kind, param)] = field

    @staticmethod
    def param_name(kind: str, param: str) -> str:
        return f"{kind}__{param}"

    def chosen_kind(self) -> str:
        if hasattr(self, "cleaned_data") and self.cleaned_data.get("kind"):
            return self.cleaned_data["kind"]
        return str(self["kind"].value() or "outcome_match")

    def field_for(self, param: str) -> str | None:
        """The input of the chosen kind that holds ``param`` (engine problems name parameters)."""
        kind = self.chosen_kind()
        if param == "tolerance":
            param = "absolute"
        return self.param_name(kind, param) if param in CRITERION_PARAMS.get(kind, ()) else None

    def kind_fields(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(kind, help, its parameter inputs) for every kind: the template shows the chosen one."""
        return [
            (
                kind,
                CRITERION_KIND_HELP[kind],
                [self[self.param_name(kind, p)] for p in CRITERION_PARAMS[kind]],
            )
            for kind in CRITERION_KINDS
        ]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        kind = data.get("kind")
        # Inputs of the other kinds are hidden and ignored: so are their errors.
        for other, params in CRITERION_PARAMS.items():
            if other != kind:
                for param in params:
                    self.errors.pop(self.param_name(other, param), None)
        if kind == "numeric_tolerance" and all(
            data.get(self.param_name(kind, p)) is None for p in ("absolute", "relative")
        ):
            self.add_error(
                self.param_name(kind, "absolute"), "Give an absolute or a relative tolerance (or both)."
            )
        return data

    def to_item(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind = data["kind"]
        params: dict[str, Any] = {}
        for name in CRITERION_PARAMS[kind]:
            value = data.get(self.param_name(kind, name))
            if name == "terms":
                value = lines(value or "")
            elif name in ("absolute", "relative"):
                value = _number(value)
            if value in (None, "", []) and name != "before_decision":
                continue
            params[name] = value
        when = data["when"].strip()
        return {
            "name": data["name"].strip(),
            "kind": kind,
            "weight": _number(data["weight"]),
            "gate": data["gate"],
            "when": when or None,
            "description": data["description"],
            "params": params,
        }

    @classmethod
    def initial_from(cls, item: Mapping[str, Any]) -> dict[str, Any]:
        params = item.get("params") or {}
        kind = item.get("kind", "outcome_match")
        initial: dict[str, Any] = {
            "name": item.get("name", ""),
            "kind": kind,
            "weight": item.get("weight", 1),
            "gate": item.get("gate", False),
            "when": item.get("when") or "",
            "description": item.get("description", ""),
        }
        for name, value in params.items():
            if name in CRITERION_PARAMS.get(kind, ()):
                shown = "\n".join(value) if name == "terms" and isinstance(value, list) else value
                initial[cls.param_name(kind, name)] = shown
        return initial


def criterion_summary(item: Mapping[str, Any]) -> str:
    """One line saying what a criterion checks, for the criteria table."""
    params = item.get("params") or {}
    kind = item.get("kind")
    match kind:
        case "outcome_match":
            return "decision equals the expected one"
        case "field_match":
            return f"{params.get('argument')} equals the expected one"
        case "numeric_tolerance":
            parts = []
            if params.get("relative") is not None:
                parts.append(f"{params['relative'] * 100:g}%")
            if params.get("absolute") is not None:
                parts.append(f"{params['absolute']:g}")
            return f"{params.get('argument')} within ± {' or '.join(parts) or '?'}"
        case "required_step":
            suffix = " before deciding" if params.get("before_decision", True) else ""
            return f"{params.get('tool')} called{suffix}"
        case "forbidden_step":
            return f"{params.get('tool_or_decision')} never used"
        case "step_order":
            return f"{params.get('before')} before {params.get('after')}"
        case "explanation_mentions":
            sources = [*(params.get("terms") or []), *(params.get("cite_tools") or [])]
            return f"explanation cites {params.get('min_matches', 1)} of {', '.join(sources)}"
        case "expression":
            return str(params.get("expression", ""))
    return str(kind)


# --------------------------------------------------------------------------- JSON editors


def parse_json(text: str, *, expect: type) -> Any:
    """Parse an expert's JSON; ValidationError naming the line and column of a syntax error."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    if not isinstance(value, expect):
        wanted = "a list [ … ]" if expect is list else "an object { … }"
        raise ValidationError(f"Expected {wanted}, got {type(value).__name__}.")
    return value


# --------------------------------------------------------------------------- creating things


class WorkflowCreateForm(Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=80, required=False, help_text="Optional; made from the name when empty."
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    pack = forms.ChoiceField(
        required=False, help_text="A pack brings ready-made tools, a case generator and a reference solver."
    )
    spec = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono", "spellcheck": "false"}),
        label="Start from this spec (JSON)",
        help_text="Leave empty to start from the pack's spec, or from one field and two decisions.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pack"].choices = [("", "No pack"), *((name, name) for name in pack_names())]  # type: ignore[attr-defined]

    def clean_spec(self) -> dict[str, Any] | None:
        text = self.cleaned_data["spec"].strip()
        return parse_json(text, expect=dict) if text else None


STARTER_SPEC: dict[str, Any] = {
    "name": "workflow",
    "title": "",
    "description": "",
    "max_steps": 10,
    "case_fields": [{"name": "amount", "type": "number", "minimum": 0, "description": "Amount requested."}],
    "tools": [],
    "decisions": [
        {
            "name": "approve",
            "description": "Grant the request.",
            "arguments": [{"name": "amount", "type": "number", "minimum": 0}],
        },
        {"name": "deny", "description": "Refuse the request.", "arguments": []},
    ],
}


class RubricCreateForm(Form):
    name = forms.CharField(max_length=200)
    start = forms.ChoiceField(label="Start from", widget=forms.RadioSelect)

    def __init__(self, *args: Any, starts: Sequence[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start"].choices = list(starts)  # type: ignore[attr-defined]
        if starts:
            self.fields["start"].initial = starts[0][0]


STARTER_RUBRIC: dict[str, Any] = {
    "step_cost": 0.01,
    "shaping": {},
    "criteria": [
        {
            "name": "right_outcome",
            "kind": "outcome_match",
            "weight": 1,
            "description": "The decision is the expected one.",
            "params": {},
        }
    ],
}


class TableUploadForm(Form):
    name = forms.SlugField(max_length=80, help_text="The name lookup tools use, e.g. policies.")
    file = forms.FileField(required=False, label="CSV file", help_text="The first line names the columns.")
    text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono", "spellcheck": "false"}),
        label="…or paste CSV",
    )

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            try:
                data["csv"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("file", "The file is not UTF-8 text.")
        elif (data.get("text") or "").strip():
            data["csv"] = data["text"]
        else:
            self.add_error("file", "Choose a CSV file or paste its content.")
        return data


class CaseImportForm(Form):
    workflow = forms.TypedChoiceField(coerce=int)
    format = forms.ChoiceField(
        choices=[("auto", "From the file name"), ("csv", "CSV"), ("jsonl", "JSON lines")], initial="auto"
    )
    default_split = forms.ChoiceField(
        choices=[(s.value, s.label) for s in Split if s != Split.LIVE],
        initial=Split.TRAIN,
        help_text="For rows that do not name a split.",
    )
    file = forms.FileField(required=False)
    text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono", "spellcheck": "false"}),
        label="…or paste the cases",
    )

    def __init__(self, *args: Any, workflows: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].choices = [(w.pk, w.name) for w in workflows]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        upload = data.get("file")
        fmt = data.get("format")
        if upload is not None:
            try:
                data["content"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("file", "The file is not UTF-8 text.")
                return data
            if fmt == "auto":
                suffix = upload.name.rsplit(".", 1)[-1].lower()
                fmt = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl"}.get(suffix)
                if fmt is None:
                    self.add_error(
                        "format", f"Cannot tell the format of {upload.name!r}: choose CSV or JSON lines."
                    )
        elif (data.get("text") or "").strip():
            data["content"] = data["text"]
            if fmt == "auto":
                fmt = "jsonl" if data["text"].lstrip().startswith("{") else "csv"
        else:
            self.add_error("file", "Choose a file or paste the cases.")
        data["fmt"] = fmt
        return data


class CaseGenerateForm(Form):
    workflow = forms.TypedChoiceField(coerce=int, help_text="Only workflows with a pack can generate cases.")
    count = forms.IntegerField(min_value=1, max_value=100_000, initial=100)
    difficulty = forms.TypedChoiceField(
        coerce=int,
        choices=[(0, "0 · plain"), (1, "1 · some twists"), (2, "2 · harder"), (3, "3 · edge cases")],
        initial=1,
    )
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=1, help_text="Same seed, same cases.")
    train = forms.FloatField(min_value=0, max_value=1, initial=0.7, label="Train share")
    validation = forms.FloatField(min_value=0, max_value=1, initial=0.15, label="Validation share")
    test = forms.FloatField(min_value=0, max_value=1, initial=0.15, label="Test share")

    def __init__(self, *args: Any, workflows: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].choices = [(w.pk, w.name) for w in workflows]  # type: ignore[attr-defined]

    def splits(self) -> dict[str, float]:
        return {name: self.cleaned_data[name] for name in ("train", "validation", "test")}

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        shares = [data.get(name) for name in ("train", "validation", "test")]
        if all(share is not None for share in shares) and sum(shares) <= 0:  # type: ignore[arg-type]
            self.add_error("train", "At least one split needs a positive share.")
        return data


# --------------------------------------------------------------------------- drafts


_ITEM_PATH = re.compile(r"^(?P<section>[a-z_]+)\[(?P<index>\d+)\](?:\.(?P<rest>.*))?$")


def problems_by_item(
    problems: Mapping[str, Sequence[str]],
) -> tuple[dict[str, list[tuple[str, str]]], list[tuple[str, str]]]:
    """Split engine problems (path → messages) into those about one list item, keyed
    ``"<section>:<index>"`` with the rest of the path (``minimum``, ``params.tolerance``), and the
    others (settings, whole sections), each as (path, message)."""
    by_item: dict[str, list[tuple[str, str]]] = {}
    general: list[tuple[str, str]] = []
    for path, messages in problems.items():
        match = _ITEM_PATH.match(path)
        for message in messages:
            if match:
                key = f"{match['section']}:{match['index']}"
                by_item.setdefault(key, []).append((match["rest"] or "", message))
            else:
                general.append((path, message))
    return by_item, general


def move(items: list[Any], index: int, offset: int) -> list[Any]:
    """A copy of ``items`` with ``items[index]`` moved by ``offset`` (clamped to the ends)."""
    out = list(items)
    if 0 <= index < len(out):
        target = max(0, min(len(out) - 1, index + offset))
        out.insert(target, out.pop(index))
    return out
