from projects.access import is_ops


def portal(request):
    user = getattr(request, "user", None)
    return {"is_ops": bool(user is not None and is_ops(user))}
