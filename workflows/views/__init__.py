"""Server-rendered pages of the workflows app, one module per area.

Each module keeps its routes beside its views in a module-level ``urlpatterns``;
``workflows/urls.py`` joins them. Views are thin: they check role and organisation
(``role_required`` and the services' own checks), then call selectors and services.
"""
