from django.db import migrations

# The first default python Dockerfile ran `pip install` inside the image build, which needs an index there.
OLD_DEFAULT_LINE = "RUN pip install --no-cache-dir -r requirements.txt"


def offline_python_recipe(apps, schema_editor):
    """A new version of the python recipe when the one in use is still the first default (an edited recipe
    is the company's own and stays)."""
    from deploys.recipes import DEFAULT_RECIPES

    BuildRecipe = apps.get_model("deploys", "BuildRecipe")
    current = BuildRecipe.objects.filter(language="python").order_by("-version").first()
    if current is None or OLD_DEFAULT_LINE not in current.dockerfile:
        return
    BuildRecipe.objects.create(
        language="python",
        version=current.version + 1,
        dockerfile=DEFAULT_RECIPES["python"]["dockerfile"],
        build_shell=DEFAULT_RECIPES["python"]["build_shell"],
        comment="OpsPortal default: requirements fetched as wheels by the build shell, installed offline",
    )


class Migration(migrations.Migration):
    dependencies = [("deploys", "0011_release_config")]
    operations = [migrations.RunPython(offline_python_recipe, migrations.RunPython.noop)]
