import json

from django.http import HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

# A JSON body is only walked up to this size; larger bodies are the API's own business (and its limits).
_MAX_JSON_SCAN_BYTES = 2 * 1024 * 1024


def _nul_paths(value, path: str) -> list[str]:
    """The dotted paths of the strings (keys included) in a parsed JSON document that contain NUL."""
    found: list[str] = []
    if isinstance(value, str):
        if "\x00" in value:
            found.append(path or "body")
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                found.append(child.replace("\x00", "\\0"))
            else:
                found.extend(_nul_paths(item, child))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_nul_paths(item, f"{path}.{index}" if path else str(index)))
    return found


def _content_length(request) -> int:
    # A malformed header is the client's fault, not ours: read it as empty, as Django's own parsing does.
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0


def _printable(name: str) -> str:
    return name.replace("\x00", "\\0")


class RejectNulBytesMiddleware:
    """No legitimate input has NUL bytes, and PostgreSQL refuses them mid-query (a 500): answer 400 at the
    edge, for the query string, form fields and JSON strings, before any view or service sees them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        fields = self._fields_with_nul(request)
        if fields:
            return self._refuse(request, fields)
        return self.get_response(request)

    @staticmethod
    def _fields_with_nul(request) -> list[str]:
        if "\x00" in request.path:
            return ["path"]
        found = [_printable(name) for name, values in request.GET.lists() if "\x00" in name + "".join(values)]
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return found
        # A page's multipart form is left to its form: Django's CharField refuses NUL with a message next
        # to the field. Browsers post ordinary forms urlencoded, and the API has no form to show.
        form_checked = request.content_type == "application/x-www-form-urlencoded" or (
            request.content_type == "multipart/form-data" and request.path.startswith("/api/")
        )
        if form_checked:
            found += [
                _printable(name) for name, values in request.POST.lists() if "\x00" in name + "".join(values)
            ]
        elif request.content_type == "application/json" or request.content_type.endswith("+json"):
            if _content_length(request) <= _MAX_JSON_SCAN_BYTES:
                try:
                    document = json.loads(request.body)
                except (ValueError, UnicodeDecodeError):
                    return found  # malformed JSON: the view's parser answers that with its own 400
                found += _nul_paths(document, "")
        return found

    @staticmethod
    def _refuse(request, fields: list[str]):
        message = _("Input must not contain NUL (\\0) characters.")
        if request.path.startswith("/api/"):
            # Keyed by the top-level field, like every other API error; the message names the nested path.
            errors: dict[str, list[str]] = {}
            for field in fields:
                top = field.split(".", 1)[0]
                errors.setdefault(top, []).append(message if field == top else f"{message} ({field})")
            return JsonResponse({"detail": message, "errors": errors}, status=400)
        body = render_to_string("400.html", {"message": message, "fields": fields}, request=request)
        return HttpResponseBadRequest(body)
