"""Registering instances in a real Eureka server over its REST API, as a Eureka client does."""

from __future__ import annotations

import requests

DATA_CENTER = {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}


def instance_body(app: str, ip: str, port: int = 8080, *, status: str = "UP", metadata=None) -> dict:
    """The minimal instance the server accepts (integrations reference, section C), id ``ip:app:port``."""
    app = app.upper()
    return {
        "instance": {
            "instanceId": f"{ip}:{app.lower()}:{port}",
            "hostName": ip,
            "app": app,
            "ipAddr": ip,
            "vipAddress": app.lower(),
            "secureVipAddress": app.lower(),
            "status": status,
            "port": {"$": port, "@enabled": "true"},
            "securePort": {"$": 443, "@enabled": "false"},
            "healthCheckUrl": f"http://{ip}:{port}/actuator/health",
            "statusPageUrl": f"http://{ip}:{port}/actuator/info",
            "homePageUrl": f"http://{ip}:{port}/",
            "dataCenterInfo": DATA_CENTER,
            "leaseInfo": {"renewalIntervalInSecs": 30, "durationInSecs": 90},
            "metadata": metadata or {},
        }
    }


def register(eureka_url: str, app: str, ip: str, port: int = 8080, **kwargs) -> str:
    """Register an instance (204); returns its instanceId."""
    body = instance_body(app, ip, port, **kwargs)
    response = requests.post(f"{eureka_url.rstrip('/')}/apps/{app.upper()}", json=body, timeout=10)
    assert response.status_code == 204, response.text
    return body["instance"]["instanceId"]


def instance(eureka_url: str, app: str, instance_id: str) -> dict | None:
    """The server's record of one instance (not served from the response cache), or None."""
    response = requests.get(
        f"{eureka_url.rstrip('/')}/apps/{app.upper()}/{instance_id}",
        headers={"Accept": "application/json"},
        timeout=10,
    )
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json()["instance"]
