from __future__ import annotations

from caseloop.webhooks import views

urlpatterns = views.urlpatterns
