"""The generic Dockerfiles add the preStop hook's static HTTP client from the helper image
(OPSPORTAL_PRESTOP_HELPER_IMAGE), so the hook works in images without curl or wget."""

from __future__ import annotations

import pytest

from clusters.workload.manifests import PRESTOP_HTTP_POST
from deploys.recipes import DEFAULT_RECIPES, PRESTOP_STAGE, dockerfile_errors, render_dockerfile

HELPER = "registry.example.com/opsportal/prestop-helper:1"
BASE = "registry.example.com/base/jre:17"


@pytest.mark.parametrize("language", sorted(DEFAULT_RECIPES))
def test_every_generic_dockerfile_copies_the_helper_where_the_hook_looks_for_it(language):
    template = DEFAULT_RECIPES[language]["dockerfile"]
    assert dockerfile_errors(template) == []
    lines = render_dockerfile(
        template, project="orders", port=8080, base=BASE, prestop_helper=HELPER
    ).splitlines()
    assert lines[0] == f"FROM {HELPER} AS {PRESTOP_STAGE}"
    # The final stage (after any build stage of the recipe's own, as python's) starts with the copy.
    final = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    assert lines[final : final + 2] == [
        f"FROM {BASE}",
        f"COPY --from={PRESTOP_STAGE} {PRESTOP_HTTP_POST} {PRESTOP_HTTP_POST}",
    ]


def test_a_dockerfile_that_names_the_helper_needs_the_setting():
    with pytest.raises(ValueError, match="set OPSPORTAL_PRESTOP_HELPER_IMAGE"):
        render_dockerfile(DEFAULT_RECIPES["go"]["dockerfile"], project="orders", port=8080, base=BASE)
    with pytest.raises(ValueError, match="is not an image reference"):
        render_dockerfile(
            DEFAULT_RECIPES["go"]["dockerfile"], project="orders", port=8080, base=BASE, prestop_helper="a b"
        )


def test_an_ops_recipe_without_the_helper_still_renders_without_the_setting():
    # Recipes edited before the helper existed keep working; their hooks fall back to wget or curl.
    text = "FROM {{ base_image }}\nCOPY bin/app /app/app\nEXPOSE {{ port }}\n"
    assert render_dockerfile(text, project="orders", port=9000, base=BASE) == (
        f"FROM {BASE}\nCOPY bin/app /app/app\nEXPOSE 9000\n"
    )
