"""Writes to a project's Apollo configuration. Other apps call these names (a release that carries a
config change set: ``config_changes_apply``, ``config_release_current``)."""

from configs.selectors import config_release_current
from configs.services.apollo import (
    ConfigChange,
    RollbackResult,
    config_change_set_clean,
    config_changes_apply,
    config_item_create,
    config_item_delete,
    config_item_update,
    config_release,
    config_release_restore,
    config_rollback,
)
from configs.services.settings import apollo_settings_has_token, apollo_settings_update

__all__ = [
    "ConfigChange",
    "RollbackResult",
    "apollo_settings_has_token",
    "apollo_settings_update",
    "config_change_set_clean",
    "config_changes_apply",
    "config_item_create",
    "config_item_delete",
    "config_item_update",
    "config_release",
    "config_release_current",
    "config_release_restore",
    "config_rollback",
]
