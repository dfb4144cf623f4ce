"""Rendered workload objects meet the live cluster: what to send, keeping the fields others own."""

from clusters.workload import manifests


def keep_live_fields(client, obj: dict) -> dict:
    """Fields of a running Deployment that others own: the HPA owns the replica count and releases own
    the image. Re-applying the configuration sends their live values, so a config change never resets
    the scale (dropping the field instead would let it fall to 1) or rolls back a release."""
    if obj["kind"] != "Deployment":
        return obj
    live = client.get("Deployment", obj["metadata"]["namespace"], obj["metadata"]["name"])
    if live is None:
        return obj
    live_spec = live.get("spec") or {}
    live_images = {
        c["name"]: c.get("image")
        for c in (((live_spec.get("template") or {}).get("spec") or {}).get("containers") or [])
    }
    template = obj["spec"]["template"]
    containers = [
        {**c, "image": live_images.get(c["name"]) or c["image"]} for c in template["spec"]["containers"]
    ]
    spec = {**obj["spec"], "template": {**template, "spec": {**template["spec"], "containers": containers}}}
    if live_spec.get("replicas") is not None:
        spec["replicas"] = live_spec["replicas"]
    return {**obj, "spec": spec}


def had_env_secret(environment) -> bool:
    """Whether the environment's last apply put values into its env Secret: secret variables, or the log
    pipeline's URL (a Secret among the objects applied while the service logged to the pipeline)."""
    if environment is None:
        return False
    request = (environment.spec or {}).get("request") or {}
    logged = request.get("logs_to_pipeline") is True and any(
        obj.get("kind") == "Secret" for obj in environment.live_objects or []
    )
    return bool(environment.secret_env) or logged


def objects_to_apply(spec: manifests.WorkloadSpec, rendered, *, had_secrets: bool) -> list[dict]:
    """The rendered objects, plus a Secret without data when the last secret value was just removed:
    applying it releases the keys opsportal owned, which removes them (an object left out of the apply is
    untouched)."""
    objects = list(rendered.objects)
    if had_secrets and not manifests.uses_env_secret(spec):
        objects.insert(1, manifests.env_secret(spec))
    return objects
