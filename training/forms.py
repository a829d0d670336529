"""The training launch form: workflow, policy name and every PPO setting, typed, with the config's
own defaults and help. The service (``job_config_build`` via ``training_job_launch``) has the last
word on validity; its errors come back on the matching field."""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms

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
            label=label, choices=_CHOICES[field.name], initial=field.default, help_text=help_text
        )
    if kind == "bool":
        return forms.BooleanField(label=label, required=False, initial=field.default, help_text=help_text)
    if kind == "int":
        return forms.IntegerField(label=label, initial=field.default, help_text=help_text)
    if kind == "float":
        return forms.FloatField(label=label, initial=field.default, help_text=help_text)
    if kind == "float | None":
        return forms.FloatField(
            label=label, required=False, initial=field.default, help_text=f"{help_text} Leave empty for none."
        )
    return forms.CharField(label=label, initial=field.default, help_text=help_text)


class TrainingLaunchForm(forms.Form):
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
        for field in dataclasses.fields(PPOConfig):
            self.fields[PPO_PREFIX + field.name] = _ppo_field(field)

    def essential_fields(self) -> list[forms.BoundField]:
        return [self[PPO_PREFIX + name] for name in ESSENTIAL]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[PPO_PREFIX + f.name] for f in dataclasses.fields(PPOConfig) if f.name not in ESSENTIAL]

    def config(self) -> dict[str, Any]:
        """The job config for ``training_job_launch`` from the cleaned data."""
        data = self.cleaned_data
        return {
            "algorithm": "ppo",
            "ppo": {f.name: data[PPO_PREFIX + f.name] for f in dataclasses.fields(PPOConfig)},
            "include_review_cases": data["include_review_cases"],
            "evaluate_limit": data["evaluate_limit"],
        }

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Put the service's errors (``config.ppo.gamma``, ``workflow``, …) on the matching fields."""
        for key, messages in errors.items():
            name = key.removeprefix("config.").replace("ppo.", PPO_PREFIX)
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
