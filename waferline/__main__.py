"""`python -m waferline`: the same CLI as the `waferline` command."""

from waferline.cli import app

app(prog_name="waferline")
