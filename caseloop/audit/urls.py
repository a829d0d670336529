from __future__ import annotations

from caseloop.audit import views

urlpatterns = views.urlpatterns
