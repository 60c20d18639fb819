"""Test configuration: fixture plugins for real infrastructure (see tests/fixtures/)."""

pytest_plugins = [
    "tests.fixtures.infra",
    "tests.fixtures.ledger",
]
