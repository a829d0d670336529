"""The create form of the webhooks page. It only collects input: the service validates it."""

from __future__ import annotations

from django import forms

from caseloop.webhooks.models import EVENT_DESCRIPTIONS


class WebhookCreateForm(forms.Form):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/caseloop/webhooks"}),
        help_text="Receives a signed POST for each event.",
    )
    events = forms.MultipleChoiceField(
        label="Events",
        choices=[(name, f"{name} — {text}") for name, text in EVENT_DESCRIPTIONS.items()],
        widget=forms.CheckboxSelectMultiple,
        required=False,  # the service names the field when none is chosen
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
