from django.test import override_settings

from opsportal.templatetags.portal import local_time


@override_settings(TIME_ZONE="Asia/Shanghai")
def test_local_time_shows_an_iso_stamp_in_the_portal_time_zone():
    assert local_time("2026-11-28T01:38:35.123+00:00") == "09:38:35"
    assert local_time("2026-11-28T01:38:36.081647Z", "date") == "2026-11-28 09:38:36"


def test_local_time_leaves_what_it_cannot_parse():
    assert local_time("") == ""
    assert local_time("soon") == "soon"
