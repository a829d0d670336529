from __future__ import annotations

from workflows.views import authoring, cases, dashboard, reviews

urlpatterns = [*dashboard.urlpatterns, *authoring.urlpatterns, *cases.urlpatterns, *reviews.urlpatterns]
