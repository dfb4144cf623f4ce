"""What only ops may see is not there for anyone else (404, as a project for a non-member); a right only
ops have on something everyone sees is refused (403)."""

import pytest
from django.http import Http404

from deploys.services import recipe_update

pytestmark = pytest.mark.django_db


def test_creating_a_project_is_a_right_on_a_list_everyone_sees_so_non_ops_get_403(client, people):
    for user in (people.owner, people.developer, people.qa):
        client.force_login(user)
        assert client.get("/projects/").status_code == 200
        assert client.get("/projects/new/").status_code == 403
        response = client.post(
            "/api/projects/", {"name": "payments", "language": "go"}, content_type="application/json"
        )
        assert response.status_code == 403
    client.force_login(people.ops)
    assert client.get("/projects/new/").status_code == 200


def test_build_recipes_are_not_there_for_non_ops(client, people):
    with pytest.raises(Http404):
        recipe_update(
            actor=people.developer, language="go", dockerfile="FROM scratch", build_shell="", comment=""
        )
    client.force_login(people.developer)
    assert client.get("/recipes/").status_code == 404
    response = client.post(
        "/api/recipes/go/",
        {"dockerfile": "FROM scratch", "build_shell": "true"},
        content_type="application/json",
    )
    assert response.status_code == 404
