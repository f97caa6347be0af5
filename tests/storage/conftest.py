"""Fixtures every storage test can use: one real S3-compatible server per module and its credentials."""

from support.obs_fixtures import secret, server  # noqa: F401 (pytest fixtures)
