"""Forms of the organisation admin pages. The services check roles and organisation again."""

from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password

from caseloop.accounts.models import Role
from caseloop.accounts.permissions import SCOPES


class MemberCreateForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="The login name; letters, digits and @.+-_ only.")
    email = forms.EmailField(required=False, help_text="Optional.")
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Give it to the new member through a safe channel; they sign in with it.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.REVIEWER)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password)
        return password

    @staticmethod
    def password_rules() -> str:
        return password_validators_help_text_html()


class MemberAddExistingForm(forms.Form):
    existing_username = forms.CharField(max_length=150, label="Username")
    existing_role = forms.ChoiceField(choices=Role.choices, initial=Role.REVIEWER, label="Role")


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="What uses it, e.g. “claims intake”.")
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Grant only what the integration needs; “admin” grants everything.",
    )
