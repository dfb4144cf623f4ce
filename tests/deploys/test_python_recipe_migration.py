"""deploys 0012 gives a database whose python recipe is still the first default (`pip install` inside the
image build, which needs an index there) a new version with today's offline one; an edited recipe stays."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from deploys.recipes import DEFAULT_RECIPES

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("deploys", "0011_release_config")]
AFTER = [("deploys", "0012_python_recipe_offline_wheels")]
FIRST_DEFAULT = """FROM {{ base_image }}
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
"""


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.parametrize(("dockerfile", "upgraded"), [(FIRST_DEFAULT, True), ("FROM x\nCOPY . .\n", False)])
def test_only_the_untouched_first_default_is_replaced(dockerfile, upgraded):
    old = _migrate(BEFORE)
    Recipe = old.get_model("deploys", "BuildRecipe")
    Recipe.objects.filter(language="python").delete()
    Recipe.objects.create(
        language="python", version=3, dockerfile=dockerfile, build_shell="echo $GIT_TAG $IMAGE"
    )
    go = Recipe.objects.filter(language="go").count()
    try:
        new = _migrate(AFTER)
        recipes = (
            new.get_model("deploys", "BuildRecipe").objects.filter(language="python").order_by("-version")
        )
        if upgraded:
            latest = recipes.first()
            assert (latest.version, latest.dockerfile, latest.build_shell) == (
                4,
                DEFAULT_RECIPES["python"]["dockerfile"],
                DEFAULT_RECIPES["python"]["build_shell"],
            )
            assert "--no-index" in latest.dockerfile and "pip wheel" in latest.build_shell
        assert [r.version for r in recipes] == ([4, 3] if upgraded else [3])
        assert recipes.get(version=3).dockerfile == dockerfile
        assert new.get_model("deploys", "BuildRecipe").objects.filter(language="go").count() == go
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())  # back to the head for the rest of the suite
