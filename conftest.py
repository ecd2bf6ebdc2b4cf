"""Fixtures shared by the whole suite: the local OpenAI-compatible test server."""

pytest_plugins = ["tests.fake_openai"]
