from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DeploysConfig(AppConfig):
    name = "deploys"
    verbose_name = _("Deploys")

    def ready(self):
        from clusters.selectors.monitoring import register_marker_source
        from deploys.selectors import deployment_markers

        # The monitoring panels (in clusters, below deploys) mark this environment's releases.
        register_marker_source(deployment_markers)
