"""``python -m orchard_cli`` runs the ``orchard`` command."""

from orchard_cli.main import app

if __name__ == "__main__":
    app(prog_name="orchard")
