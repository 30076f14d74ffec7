"""Forms of the hub's own account pages (allauth brings login and sign-up)."""

from __future__ import annotations

import re

from django import forms

EXPIRY_CHOICES = [
    ("", "Never"),
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "1 week"),
    ("2592000", "30 days"),
    ("31536000", "1 year"),
]
MAX_SCOPES = 64
MAX_SCOPE_LENGTH = 255


class TokenForm(forms.Form):
    """A new personal API token. Empty scopes mean `inherit` (all of the owner's)."""

    note = forms.CharField(
        max_length=1023, required=False, help_text="What the token is for, e.g. 'laptop script'."
    )
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires in")
    scopes = forms.CharField(
        required=False,
        max_length=MAX_SCOPES * (MAX_SCOPE_LENGTH + 1),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "read:users!user=alice servers"}),
        help_text="Space- or comma-separated; empty = all of your permissions (inherit).",
    )

    def clean_expires_in(self) -> float | None:
        value = self.cleaned_data["expires_in"]
        return float(value) if value else None

    def clean_scopes(self) -> list[str]:
        scopes = [s for s in re.split(r"[\s,]+", self.cleaned_data["scopes"]) if s]
        if len(scopes) > MAX_SCOPES:
            raise forms.ValidationError(f"At most {MAX_SCOPES} scopes.")
        if any(len(s) > MAX_SCOPE_LENGTH for s in scopes):
            raise forms.ValidationError(f"A scope is at most {MAX_SCOPE_LENGTH} characters.")
        return list(dict.fromkeys(scopes)) or ["inherit"]
