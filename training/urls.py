from __future__ import annotations

from training import views

urlpatterns = views.urlpatterns
