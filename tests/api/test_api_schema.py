"""The OpenAPI schema and its documentation pages, served from local static files."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_schema_describes_every_operation_with_the_error_shape():
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/cases" in schema["paths"] and "/api/v1/audit/verify" in schema["paths"]
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404", "429"):
                content = operation["responses"][status]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}, (path, method, status)
            if method == "post":
                names = [p["name"] for p in operation.get("parameters", [])]
                assert "Idempotency-Key" in names, path


@pytest.mark.parametrize(("page", "asset"), [("/api/docs/", "swagger-ui-dist"), ("/api/redoc/", "redoc")])
def test_documentation_pages_load_their_assets_locally(page, asset):
    response = APIClient().get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"/static/drf_spectacular_sidecar/{asset}/" in html
    for cdn in ("cdn.jsdelivr", "unpkg.com", "cdnjs"):
        assert cdn not in html
    # the referenced files exist among the static files
    name = (
        "swagger-ui-dist/swagger-ui-bundle.js"
        if asset == "swagger-ui-dist"
        else "redoc/bundles/redoc.standalone.js"
    )
    assert finders.find(f"drf_spectacular_sidecar/{name}")
