"""The WSGI entry point: `gunicorn wsgi:app`, and `flask --app wsgi <command>` for the CLI."""

from dotenv import load_dotenv

load_dotenv()

from app import create_app  # noqa: E402 - .env must be loaded before the config is read

app = create_app()
