from django.core.exceptions import BadRequest


class RejectNulBytesMiddleware:
    """No legitimate input has NUL bytes, and PostgreSQL refuses them mid-query: answer 400 early."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            "\x00" in request.path
            or any("\x00" in value for value in request.GET.values())
            or (
                request.content_type != "multipart/form-data"
                and any("\x00" in v for v in request.POST.values())
            )
        ):
            raise BadRequest("Input contains NUL bytes.")
        return self.get_response(request)
