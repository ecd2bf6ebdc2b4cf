"""Start the test provider: `python -m tests.oidc_provider` with, in the environment,

PROVIDER_PORT, PROVIDER_ISSUER (http://127.0.0.1:<port>/o), PROVIDER_DATABASE (a SQLite file),
PROVIDER_RSA_KEY (a PEM private key), PROVIDER_CLIENT_ID, PROVIDER_CLIENT_SECRET,
PROVIDER_REDIRECT_URI (the product's callback) and PROVIDER_USERS (JSON: a list of
{"username", "password", "email", "groups"}). It migrates its database, registers the client and
the users, and serves until stopped.
"""

import json
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")

import django

django.setup()

import uvicorn  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import get_application_model  # noqa: E402


def prepare() -> None:
    call_command("migrate", verbosity=0, interactive=False)
    get_application_model().objects.create(
        name="Agent Chat",
        client_id=os.environ["PROVIDER_CLIENT_ID"],
        client_secret=os.environ["PROVIDER_CLIENT_SECRET"],
        client_type="confidential",
        authorization_grant_type="authorization-code",
        redirect_uris=os.environ["PROVIDER_REDIRECT_URI"],
        algorithm="RS256",
        skip_authorization=True,
    )
    for person in json.loads(os.environ.get("PROVIDER_USERS", "[]")):
        user = User.objects.create_user(person["username"], email=person.get("email", ""), password=person["password"])
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in person.get("groups", [])])


if __name__ == "__main__":
    prepare()
    uvicorn.run(get_asgi_application(), host="127.0.0.1", port=int(os.environ["PROVIDER_PORT"]), log_level="warning")
