"""The dashboard: what is happening in the current organisation today."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils.safestring import mark_safe

from caseloop.charts import Series, line_chart
from workflows import selectors


def _url_exists(name: str) -> bool:
    try:
        reverse(name, args=[0])
    except NoReverseMatch:
        return False
    return True


@login_required
def home(request):
    if request.actor is None:
        return render(request, "workflows/no_organization.html", status=403)
    overview = selectors.dashboard_overview(actor=request.actor)
    charts = {}
    for row in overview.workflows:
        if row.agreement_series:
            points = [(float(n), p.rate) for n, p in enumerate(row.agreement_series, start=1)]
            first, last = row.agreement_series[0].day, row.agreement_series[-1].day
            charts[row.workflow.pk] = mark_safe(  # noqa: S308 - charts.py escapes every text it draws
                line_chart(
                    [Series(f"agreement with reviewers ({first} to {last})", points)],
                    title=f"Daily agreement with reviewers, {row.production}",
                    x_label="day with reviews",
                    y_label="approved as proposed",
                    width=520,
                    height=200,
                    y_min=0.0,
                    y_max=1.0,
                )
            )
    rows = [(row, charts.get(row.workflow.pk)) for row in overview.workflows]
    return render(
        request,
        "workflows/home.html",
        {
            "overview": overview,
            "rows": rows,
            "links": {
                name.replace("-", "_"): _url_exists(name) for name in ("case-detail", "decision-detail")
            },
            "can_review": request.actor.can("review.verdict"),
        },
    )


urlpatterns = [
    path("", home, name="home"),
]
