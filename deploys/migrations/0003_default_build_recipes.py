from django.db import migrations


def seed_recipes(apps, schema_editor):
    from deploys.recipes import DEFAULT_RECIPES

    BuildRecipe = apps.get_model("deploys", "BuildRecipe")
    for language, recipe in DEFAULT_RECIPES.items():
        if not BuildRecipe.objects.filter(language=language).exists():
            BuildRecipe.objects.create(
                language=language,
                version=1,
                dockerfile=recipe["dockerfile"],
                build_shell=recipe["build_shell"],
                comment="OpsPortal default",
            )


class Migration(migrations.Migration):
    dependencies = [("deploys", "0002_buildrecipe_release_deploymentrecord_and_more")]
    operations = [migrations.RunPython(seed_recipes, migrations.RunPython.noop)]
