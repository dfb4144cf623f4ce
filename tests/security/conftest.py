from tests.security.world import world  # noqa: F401  (the fixture every suite here uses)
