#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    if not os.environ.get("DJANGO_SECRET_KEY"):
        # A developer's checkout (what `make run` serves): use its var/ keys instead of failing.
        # Deployments set DJANGO_SECRET_KEY, so DEBUG stays off there.
        os.environ.setdefault("DJANGO_DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
