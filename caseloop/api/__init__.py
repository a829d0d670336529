"""The versioned REST API (``/api/v1/``) for integrations, built on Django REST framework."""
