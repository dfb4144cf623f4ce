"""Request helpers every view, API view and consumer shares."""


def client_address(request) -> str | None:
    """The address actions are audited with. One place, so that honouring a trusted proxy's
    X-Forwarded-For later changes every audit record at once."""
    return request.META.get("REMOTE_ADDR")
