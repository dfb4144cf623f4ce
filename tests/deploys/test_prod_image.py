"""Production gets an image only by promotion: no prod ticket and no prod configuration edit may set one,
whichever way it comes in (page, API, service), and a refused attempt writes nothing."""

import pytest
from django.core.exceptions import ValidationError

from clusters.forms.environments import EnvironmentConfigForm
from clusters.models import Cluster, ConfigChange, ProjectEnvironment
from clusters.workload import request as request_fields
from deploys import services
from deploys.choices import TicketStatus
from deploys.models import OnboardingTicket
from observability.models import AuditEvent
from tests.fixtures.clusters import VALID_REQUEST

pytestmark = pytest.mark.django_db

IMAGE = "hub.example.com/orders:untested"
REFUSAL = "Production gets its image only by promoting a release confirmed in test"


def _page_data(**changes) -> dict:
    return {**VALID_REQUEST, "env_vars": "LOG_LEVEL=info", "submit": "1", **changes}


def test_service_refuses_a_prod_ticket_with_an_image_and_writes_nothing(people):
    with pytest.raises(ValidationError) as refused:
        services.ticket_create(
            actor=people.developer,
            project=people.project,
            environment="prod",
            request={**VALID_REQUEST, "image": IMAGE},
        )
    assert REFUSAL in refused.value.message_dict["image"][0]
    assert not OnboardingTicket.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="ticket.").exists()


def test_a_test_ticket_may_still_bring_an_initial_image(people):
    ticket = services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment="test",
        request={**VALID_REQUEST, "image": IMAGE},
    )
    assert ticket.request["image"] == IMAGE
    assert services.ticket_spec(ticket).image == IMAGE


def test_page_form_refuses_a_prod_ticket_with_an_image(client, people):
    client.force_login(people.developer)
    response = client.post("/projects/orders/tickets/new/", _page_data(environment="prod", image=IMAGE))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-field="image"' in body
    assert REFUSAL in body
    assert not OnboardingTicket.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="ticket.").exists()
    # Without the image the same ticket is filed, and production starts on the bootstrap placeholder.
    response = client.post("/projects/orders/tickets/new/", _page_data(environment="prod", image=""))
    assert response.status_code == 302
    ticket = OnboardingTicket.objects.get()
    assert ticket.environment == "prod" and ticket.request["image"] == ""


def test_api_refuses_a_prod_ticket_with_an_image(client, people):
    client.force_login(people.developer)
    response = client.post(
        "/api/projects/orders/tickets/",
        {"environment": "prod", "request": {**VALID_REQUEST, "image": IMAGE}, "submit": True},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert REFUSAL in response.json()["errors"]["image"][0]
    assert not OnboardingTicket.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="ticket.").exists()


def test_editing_a_prod_ticket_cannot_add_an_image(client, people):
    ticket = services.ticket_create(
        actor=people.developer, project=people.project, environment="prod", request=VALID_REQUEST
    )
    url = f"/api/projects/orders/tickets/{ticket.pk}/"
    for who in (people.developer, people.ops):
        client.force_login(who)
        response = client.patch(
            url, {"request": {**VALID_REQUEST, "image": IMAGE}}, content_type="application/json"
        )
        assert response.status_code == 400, who
        assert REFUSAL in response.json()["errors"]["image"][0]
    client.force_login(people.ops)
    page = client.post(f"/projects/orders/tickets/{ticket.pk}/edit/", _page_data(image=IMAGE))
    assert page.status_code == 200
    assert REFUSAL in page.content.decode()
    ticket.refresh_from_db()
    assert "image" not in ticket.request
    assert not AuditEvent.objects.filter(verb="ticket.edit").exists()


@pytest.fixture
def prod_cluster(db):
    # Never contacted: every refusal here happens before the cluster would be.
    return Cluster.objects.create(
        name="prod-east", environment="prod", api_url="https://10.1.2.3:6443", auth_type="token"
    )


def test_a_prod_ticket_filed_with_an_image_before_the_rule_cannot_go_further(people, prod_cluster):
    ticket = services.ticket_create(
        actor=people.developer, project=people.project, environment="prod", request=VALID_REQUEST
    )
    # As stored by an older version, which took the image.
    OnboardingTicket.objects.filter(pk=ticket.pk).update(request={**VALID_REQUEST, "image": IMAGE})
    with pytest.raises(ValidationError, match=REFUSAL):
        services.ticket_submit(actor=people.developer, ticket_id=ticket.pk)
    OnboardingTicket.objects.filter(pk=ticket.pk).update(status=TicketStatus.SUBMITTED)
    with pytest.raises(ValidationError, match=REFUSAL):
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk, cluster_id=prod_cluster.pk)
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.SUBMITTED
    assert not AuditEvent.objects.filter(verb="ticket.approve").exists()


@pytest.fixture
def prod_environment(people, prod_cluster):
    return ProjectEnvironment.objects.create(
        project=people.project,
        environment="prod",
        cluster=prod_cluster,
        namespace="orders-prod",
        spec={"request": {**VALID_REQUEST, "image": ""}, "overrides": {}},
    )


def test_ops_cannot_set_a_prod_image_through_the_config_api(client, people, prod_environment):
    client.force_login(people.ops)
    url = "/api/projects/orders/environments/prod/config/"
    for dry_run in (True, False):
        response = client.put(
            url, {"request": {"image": IMAGE}, "dry_run": dry_run}, content_type="application/json"
        )
        assert response.status_code == 400
        assert REFUSAL in response.json()["errors"]["image"][0]
    prod_environment.refresh_from_db()
    assert prod_environment.spec["request"]["image"] == ""
    assert not ConfigChange.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="config").exists()


def test_the_config_page_has_no_image_field():
    assert "image" not in EnvironmentConfigForm().fields


def test_refusal_rule():
    refuse = request_fields.refuse_prod_image
    refuse(environment="test", request={"image": IMAGE})
    refuse(environment="prod", request={"image": ""})
    refuse(environment="prod", request={"replicas": 2})
    # An edit that leaves the stored image as it is (e.g. the whole request sent back) changes nothing.
    refuse(environment="prod", request={"image": IMAGE}, current={"image": IMAGE})
    with pytest.raises(ValidationError):
        refuse(environment="prod", request={"image": IMAGE}, current={"image": "other"})
