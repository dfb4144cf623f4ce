from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def get_item(mapping, key):
    """``{{ mapping|get_item:key }}``: dictionary lookup with a variable key."""
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.filter
def local_time(stamp, with_date=False):
    """An ISO stamp ("2026-01-02T01:02:03.5Z") as the portal's local time: "09:02:03", or with
    ``local_time:"date"`` "2026-01-02 09:02:03". Anything unparseable is shown as it is."""
    moment = parse_datetime(stamp) if isinstance(stamp, str) else stamp
    if moment is None:
        return stamp
    if timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
