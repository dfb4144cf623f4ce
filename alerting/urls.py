"""Pages: alerts, channels, policies, rule thresholds, notification preferences, DORA."""

from django.urls import path

from alerting.views import alerts, channels, routing

app_name = "alerting"
urlpatterns: list = [
    path("alerts/", alerts.portal_alerts, name="alert-list"),
    path("projects/<str:name>/alerts/", alerts.project_alerts, name="project-alerts"),
    path(
        "projects/<str:name>/alerts/<int:pk>/acknowledge/",
        alerts.alert_acknowledge,
        name="alert-acknowledge",
    ),
    path("projects/<str:name>/alerts/<int:pk>/silence/", alerts.alert_silence, name="alert-silence"),
    path(
        "projects/<str:name>/alerts/silences/<uuid:silence_id>/expire/",
        alerts.silence_expire,
        name="silence-expire",
    ),
    path("projects/<str:name>/alert-policies/", routing.policy_list, name="policy-list"),
    path("projects/<str:name>/alert-policies/<int:pk>/", routing.policy_edit, name="policy-edit"),
    path("projects/<str:name>/alert-policies/<int:pk>/delete/", routing.policy_delete, name="policy-delete"),
    path("profile/notifications/", routing.notification_preferences, name="notification-preferences"),
    path("channels/", channels.channel_list, name="ops-channel-list"),
    path("channels/new/", channels.channel_create, name="ops-channel-create"),
    path("channels/<int:pk>/", channels.channel_detail, name="ops-channel"),
    path("channels/<int:pk>/edit/", channels.channel_edit, name="ops-channel-edit"),
    path("channels/<int:pk>/delete/", channels.channel_delete, name="ops-channel-delete"),
    path("channels/<int:pk>/test/", channels.channel_test, name="ops-channel-test"),
    path("projects/<str:name>/channels/", channels.channel_list, name="channel-list"),
    path("projects/<str:name>/channels/new/", channels.channel_create, name="channel-create"),
    path("projects/<str:name>/channels/<int:pk>/", channels.channel_detail, name="channel"),
    path("projects/<str:name>/channels/<int:pk>/edit/", channels.channel_edit, name="channel-edit"),
    path("projects/<str:name>/channels/<int:pk>/delete/", channels.channel_delete, name="channel-delete"),
    path("projects/<str:name>/channels/<int:pk>/test/", channels.channel_test, name="channel-test"),
]
