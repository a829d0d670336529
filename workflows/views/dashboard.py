"""The dashboard: what is happening in the current organisation today."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path

from workflows import selectors


@login_required
def home(request):
    if request.actor is None:
        return render(request, "workflows/no_organization.html", status=403)
    return render(
        request, "workflows/home.html", {"overview": selectors.organization_overview(actor=request.actor)}
    )


urlpatterns = [
    path("", home, name="home"),
]
