"""Production settings: ``check --deploy`` is clean with DEBUG off, static files go through WhiteNoise,
and the test profile keeps plain HTTP."""

from __future__ import annotations

import re

import pytest
from django.conf import settings

from tests.ops.ops_processes import manage, production_env

pytestmark = pytest.mark.slow


def _deploy_check(**env: str):
    return manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(**env))


def test_check_deploy_is_clean_with_debug_off():
    result = _deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_is_clean_behind_a_tls_terminating_proxy_that_redirects():
    result = _deploy_check(SECURE_SSL_REDIRECT="0", TRUST_X_FORWARDED_PROTO="1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_turning_off_the_redirect_without_a_proxy_is_reported():
    result = _deploy_check(SECURE_SSL_REDIRECT="0")
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr


def test_insecure_cookies_are_reported():
    result = _deploy_check(SECURE_COOKIES="0")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "security.W012" in output and "security.W016" in output


def test_a_malformed_trusted_origin_stops_the_process_naming_the_variable():
    result = _deploy_check(CSRF_TRUSTED_ORIGINS="caseloop.example.com")
    assert result.returncode != 0
    assert "CSRF_TRUSTED_ORIGINS" in result.stderr


def test_production_serves_hashed_compressed_static_files_through_whitenoise(tmp_path):
    env = production_env(STATIC_ROOT=str(tmp_path / "static"))
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    hashed = [
        p.name
        for p in (tmp_path / "static" / "css").iterdir()
        if re.fullmatch(r"caseloop\.[0-9a-f]{12}\.css", p.name)
    ]
    assert hashed, "no hashed stylesheet"
    assert (tmp_path / "static" / "css" / f"{hashed[0]}.gz").is_file()
    script = "\n".join(
        [
            "from django.templatetags.static import static",
            "from django.test import Client",
            "url = static('css/caseloop.css')",
            "c = Client(HTTP_HOST='caseloop.example.com')",
            "r = c.get(url, HTTP_ACCEPT_ENCODING='gzip', secure=True)",
            "h = r.headers",
            "print('SERVED', url, r.status_code, h.get('Content-Encoding'), h.get('Cache-Control'))",
        ]
    )
    served = manage("shell", "--no-imports", "-c", script, env=env)
    assert served.returncode == 0, served.stderr
    line = next(line for line in served.stdout.splitlines() if line.startswith("SERVED "))
    _, url, status, encoding, cache = line.split(maxsplit=4)
    assert url == f"/static/css/{hashed[0]}"
    assert (status, encoding) == ("200", "gzip")
    assert "immutable" in cache


def test_whitenoise_sits_right_after_the_security_middleware():
    middleware = settings.MIDDLEWARE
    security = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"


def test_the_test_profile_keeps_plain_http_and_plain_static_storage():
    assert settings.TESTING
    assert not settings.SECURE_SSL_REDIRECT and not settings.SESSION_COOKIE_SECURE
    assert (
        settings.STORAGES["staticfiles"]["BACKEND"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
    )
