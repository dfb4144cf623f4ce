"""API: the Alertmanager receiver, alerts, silences, channels, policies, rule thresholds."""

from django.urls import path

from alerting.api import alerts, channels, receiver, routing

urlpatterns: list = [
    path("alerts/alertmanager", receiver.alertmanager_webhook, name="alertmanager-webhook"),
    path("alerts/", alerts.PortalAlertsView.as_view(), name="api-portal-alerts"),
    path("projects/<str:name>/alerts/", alerts.ProjectAlertsView.as_view(), name="api-project-alerts"),
    path("projects/<str:name>/alerts/<int:pk>/", alerts.AlertDetailView.as_view(), name="api-alert"),
    path(
        "projects/<str:name>/alerts/<int:pk>/acknowledge/",
        alerts.AlertAcknowledgeView.as_view(),
        name="api-alert-acknowledge",
    ),
    path(
        "projects/<str:name>/alerts/<int:pk>/silence/",
        alerts.AlertSilenceView.as_view(),
        name="api-alert-silence",
    ),
    path("projects/<str:name>/silences/", alerts.ProjectSilencesView.as_view(), name="api-project-silences"),
    path(
        "projects/<str:name>/silences/<uuid:silence_id>/",
        alerts.SilenceDetailView.as_view(),
        name="api-project-silence",
    ),
    path("projects/<str:name>/alert-policies/", routing.PolicyListView.as_view(), name="api-alert-policies"),
    path(
        "projects/<str:name>/alert-policies/<int:pk>/",
        routing.PolicyDetailView.as_view(),
        name="api-alert-policy",
    ),
    path("me/notifications/", routing.PreferencesView.as_view(), name="api-notification-preferences"),
    path("channels/", channels.OpsChannelListView.as_view(), name="api-ops-channel-list"),
    path("channels/<int:pk>/", channels.OpsChannelDetailView.as_view(), name="api-ops-channel"),
    path("channels/<int:pk>/test/", channels.OpsChannelTestView.as_view(), name="api-ops-channel-test"),
    path(
        "channels/<int:pk>/deliveries/",
        channels.OpsChannelDeliveriesView.as_view(),
        name="api-ops-channel-deliveries",
    ),
    path("projects/<str:name>/channels/", channels.ChannelListView.as_view(), name="api-channel-list"),
    path("projects/<str:name>/channels/<int:pk>/", channels.ChannelDetailView.as_view(), name="api-channel"),
    path(
        "projects/<str:name>/channels/<int:pk>/test/",
        channels.ChannelTestView.as_view(),
        name="api-channel-test",
    ),
    path(
        "projects/<str:name>/channels/<int:pk>/deliveries/",
        channels.ChannelDeliveriesView.as_view(),
        name="api-channel-deliveries",
    ),
]
