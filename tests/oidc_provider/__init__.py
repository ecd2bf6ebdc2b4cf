"""A real OpenID Connect provider for the single sign-on tests: a tiny Django project on
django-oauth-toolkit (`python -m tests.oidc_provider`, configured by environment; see `__main__.py`)."""
