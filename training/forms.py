"""The training launch form: workflow, policy name, algorithm, and its settings: every PPO setting
typed, with the config's own defaults and help (left empty, a setting takes its default), or the
language-model settings as JSON. The service (``job_config_build`` via ``training_job_launch``) has
the last word on validity; its errors come back on the matching field."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django import forms

from training.rl.lm.config import LMTrainConfig
from training.rl.ppo import PPOConfig

ESSENTIAL = (
    "total_updates",
    "num_envs",
    "rollout_steps",
    "minibatches",
    "learning_rate",
    "hidden_size",
    "seed",
    "max_seconds",
)
PPO_PREFIX = "ppo_"
_CHOICES = {"activation": (("relu", "relu"), ("tanh", "tanh"))}


def _ppo_field(field: dataclasses.Field) -> forms.Field:
    help_text = field.metadata.get("help", "")
    label = field.name.replace("_", " ").capitalize()
    kind = str(field.type)
    if field.name in _CHOICES:
        return forms.ChoiceField(
            label=label,
            choices=_CHOICES[field.name],
            required=False,
            initial=field.default,
            help_text=help_text,
        )
    if kind == "bool":
        return forms.BooleanField(label=label, required=False, initial=field.default, help_text=help_text)
    if kind == "int":
        return forms.IntegerField(label=label, required=False, initial=field.default, help_text=help_text)
    if kind == "float":
        return forms.FloatField(label=label, required=False, initial=field.default, help_text=help_text)
    if kind == "float | None":
        return forms.FloatField(
            label=label, required=False, initial=field.default, help_text=f"{help_text} Leave empty for none."
        )
    return forms.CharField(label=label, required=False, initial=field.default, help_text=help_text)


ALGORITHM_CHOICES = (
    ("ppo", "PPO: a neural (MLP) policy"),
    ("lm", "Language model: supervised fine-tuning, then GRPO"),
)


class TrainingLaunchForm(forms.Form):
    algorithm = forms.ChoiceField(
        choices=ALGORITHM_CHOICES,
        initial="ppo",
        widget=forms.Select(attrs={"data-shows-group": "algorithm-settings"}),
        help_text="Its settings follow.",
    )
    lm_settings = forms.CharField(
        required=False,
        label="Language-model settings (JSON)",
        widget=forms.Textarea(attrs={"rows": 18, "class": "mono", "spellcheck": "false"}),
        help_text="Every setting of the model, SFT and GRPO; the defaults are shown.",
    )
    workflow = forms.ModelChoiceField(
        queryset=None, empty_label=None, help_text="The environment to train in."
    )
    policy_name = forms.CharField(
        max_length=200,
        initial="PPO policy",
        help_text="The neural policy that gets the new version (created on first use).",
    )
    include_review_cases = forms.BooleanField(
        required=False,
        initial=False,
        label="Include reviewed live cases",
        help_text="Also learn from cases labelled by reviewers' approvals and corrections.",
    )
    evaluate_limit = forms.IntegerField(
        required=False,
        min_value=1,
        label="Evaluate on at most",
        help_text="Cases per split for the evaluation after training (empty: all labelled cases).",
    )

    def __init__(self, *args: Any, workflows: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["workflow"].queryset = workflows
        self.fields["lm_settings"].initial = json.dumps(LMTrainConfig().to_dict(), indent=2)
        for field in dataclasses.fields(PPOConfig):
            self.fields[PPO_PREFIX + field.name] = _ppo_field(field)

    def essential_fields(self) -> list[forms.BoundField]:
        return [self[PPO_PREFIX + name] for name in ESSENTIAL]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[PPO_PREFIX + f.name] for f in dataclasses.fields(PPOConfig) if f.name not in ESSENTIAL]

    def clean_lm_settings(self) -> dict[str, Any] | None:
        if self.data.get("algorithm") != "lm":
            return None
        text = self.cleaned_data["lm_settings"].strip() or "{}"
        try:
            settings = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(settings, dict):
            raise forms.ValidationError("Must be a JSON object of settings.")
        return settings

    def config(self) -> dict[str, Any]:
        """The job config for ``training_job_launch`` from the cleaned data; an empty PPO setting
        takes the config's default."""
        data = self.cleaned_data
        common = {
            "include_review_cases": data["include_review_cases"],
            "evaluate_limit": data["evaluate_limit"],
        }
        if data["algorithm"] == "lm":
            return {"algorithm": "lm", "lm": data["lm_settings"], **common}
        ppo = {}
        for field in dataclasses.fields(PPOConfig):
            value = data.get(PPO_PREFIX + field.name)
            if value is not None and value != "":  # empty: the config's default
                ppo[field.name] = value
        return {"algorithm": "ppo", "ppo": ppo, **common}

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Put the service's errors (``config.ppo.gamma``, ``workflow``, …) on the matching fields."""
        for key, messages in errors.items():
            name = key.removeprefix("config.").replace("ppo.", PPO_PREFIX)
            if name == "lm" or name.startswith("lm."):
                messages = [f"{name.removeprefix('lm.')}: {m}" if name != "lm" else m for m in messages]
                name = "lm_settings"
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
