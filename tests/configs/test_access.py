"""Who may read and change a project's Apollo configuration, per role and environment (the one access
function, projects.access.apollo_access)."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from projects.access import apollo_access

pytestmark = pytest.mark.django_db

# role: (may edit test, may edit prod) with owner_may_edit_prod off, then on.
EXPECTED = {
    "ops": ((True, True), (True, True)),
    "owner": ((True, False), (True, True)),
    "developer": ((True, False), (True, False)),
    "tester": ((False, False), (False, False)),
    "viewer": ((False, False), (False, False)),
    "qa": ((False, False), (False, False)),
}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("flag", [False, True])
def test_every_member_reads_and_the_right_roles_edit(people, role, flag):
    user = getattr(people, role)
    expected = dict(zip(("test", "prod"), EXPECTED[role][flag], strict=True))
    for environment, may_edit in expected.items():
        assert apollo_access(user, people.project, environment, owner_may_edit_prod=flag) is may_edit
        if may_edit:
            assert apollo_access(user, people.project, environment, edit=True, owner_may_edit_prod=flag)
        else:
            with pytest.raises(PermissionDenied):
                apollo_access(user, people.project, environment, edit=True, owner_may_edit_prod=flag)


def test_outsiders_inactive_users_and_unknown_environments_get_404(people):
    with pytest.raises(Http404):
        apollo_access(people.outsider, people.project, "test")
    with pytest.raises(Http404):
        apollo_access(people.outsider, people.project, "prod", edit=True, owner_may_edit_prod=True)
    people.developer.is_active = False
    people.developer.save()
    with pytest.raises(Http404):
        apollo_access(people.developer, people.project, "test")
    with pytest.raises(Http404):
        apollo_access(people.ops, people.project, "staging")
