from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ClustersConfig(AppConfig):
    name = "clusters"
    verbose_name = _("Clusters")

    def ready(self) -> None:
        from observability import events
        from projects.access import is_ops

        # A cluster's stream carries its log proxy rollouts: ops only, as the clusters are.
        events.register_stream_kind("cluster", lambda user, cluster_id: is_ops(user))
