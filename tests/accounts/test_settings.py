"""The settings page: display name, email, theme and default assistant; what it refuses and where the
choices show (the header, `<html data-theme>`, a new conversation, the "My data" zip)."""

from __future__ import annotations

import json
import zipfile

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts import my_data
from accounts.forms import EMAIL_IN_USE
from accounts.settings_forms import DISPLAY_NAME_TOO_LONG, EMAIL_REQUIRED, NO_SUCH_ASSISTANT, SettingsForm
from accounts.settings_views import SETTINGS_SAVED
from conversations.models import Conversation, Preferences
from tests.support.users import make_user

pytestmark = pytest.mark.django_db

TWO_ASSISTANTS = ["tests.assistants.example.Shop", "tests.assistants.example.Counter"]
URL = "/accounts/settings/"


@pytest.fixture
def assistants(settings):
    settings.AGENT_ASSISTANTS = TWO_ASSISTANTS


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(**changes: str) -> dict[str, str]:
    data = {"display_name": "", "email": "", "theme": "system", "default_assistant_id": ""}
    data.update(changes)
    return data


def test_the_page_needs_a_login_and_is_linked_from_the_header():
    assert Client().get(URL).status_code == 302
    assert reverse("account_settings") == URL
    page = logged_in(make_user("ada")).get(reverse("conversation_list")).content.decode()
    assert f'href="{URL}" data-testid="settings-link"' in page


def test_saving_stores_every_choice_makes_the_row_and_stays_on_the_page(assistants):
    user = make_user("ada")
    client = logged_in(user)
    assert client.get(URL).status_code == 200
    assert not Preferences.objects.filter(user=user).exists()

    response = client.post(
        URL,
        form(display_name="  Ada   Lovelace ", email="Ada@Example.COM", theme="dark", default_assistant_id="counter"),
        follow=True,
    )

    assert response.redirect_chain == [(URL, 302)]
    assert SETTINGS_SAVED in response.content.decode()
    preferences = Preferences.objects.get(user=user)
    assert (preferences.display_name, preferences.theme, preferences.default_assistant_id) == (
        "Ada Lovelace",
        "dark",
        "counter",
    )
    user.refresh_from_db()
    assert user.email == "Ada@example.com"  # the domain lower-cased, as sign-up stores it
    assert client.post(URL, form(theme="light")).status_code == 302
    assert Preferences.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        ({"email": "not an address"}, "email", "Enter a valid email address."),
        ({"email": "TAKEN@example.com"}, "email", EMAIL_IN_USE),
        ({"email": "a" * 250 + "@example.com"}, "email", "at most 254 characters"),
        ({"display_name": "x" * 81}, "display_name", DISPLAY_NAME_TOO_LONG % {"show_value": 81}),
        ({"display_name": "Ada\x00"}, "display_name", "holds a NUL character, which cannot be stored"),
        ({"default_assistant_id": "gone"}, "default_assistant_id", NO_SUCH_ASSISTANT),
        ({"theme": "neon"}, "theme", "Select a valid choice."),
    ],
)
def test_a_bad_field_is_refused_clearly_nothing_is_saved_and_what_was_typed_stays(assistants, changes, field, error):
    make_user("other", email="taken@example.com")
    user = make_user("ada", email="ada@example.com")
    typed = form(**{"display_name": "Typed name", "theme": "dark", **changes})

    response = logged_in(user).post(URL, typed)

    assert response.status_code == 400
    form_ = response.context["form"]
    assert list(form_.errors) == [field]
    assert error in form_.errors[field][0]
    page = response.content.decode()
    assert 'data-testid="settings-errors"' in page and f'data-testid="error-{field}"' in page
    if field != "display_name":
        assert 'value="Typed name"' in page
    if field == "email":
        assert f'value="{changes["email"]}"' in page
    assert not Preferences.objects.filter(user=user).exists()
    user.refresh_from_db()
    assert user.email == "ada@example.com"


def test_a_lone_surrogate_in_the_display_name_is_refused():
    """A form post cannot carry one (its bytes decode to U+FFFD), but the form checks all the same."""
    settings_form = SettingsForm(form(display_name="Ada\ud800"), user=make_user("ada"))
    assert not settings_form.is_valid()
    assert "holds a lone surrogate, which cannot be stored" in settings_form.errors["display_name"][0]


def test_keeping_ones_own_email_is_no_duplicate_and_empty_is_allowed_unless_required(settings):
    user = make_user("ada", email="ada@example.com")
    client = logged_in(user)
    assert client.post(URL, form(email="ADA@example.com")).status_code == 302
    assert client.post(URL, form(email="")).status_code == 302
    settings.SIGNUP_REQUIRE_EMAIL = True
    response = client.post(URL, form(email=""))
    assert response.status_code == 400
    assert response.context["form"].errors["email"] == [EMAIL_REQUIRED]


def test_the_header_shows_the_display_name_with_dir_auto_else_the_username():
    user = make_user("ada")
    client = logged_in(user)
    page = client.get(reverse("conversation_list")).content.decode()
    assert 'data-testid="username" dir="auto">ada<' in page

    Preferences.objects.create(user=user, display_name="אדה <b>")
    page = client.get(reverse("conversation_list")).content.decode()
    assert 'data-testid="username" dir="auto">אדה &lt;b&gt;<' in page
    assert 'title="Signed in as ada"' in page


@pytest.mark.parametrize(("theme", "attribute"), [("system", None), ("light", "light"), ("dark", "dark")])
def test_the_theme_is_an_attribute_of_html_on_every_page(theme, attribute):
    user = make_user("ada")
    Preferences.objects.create(user=user, theme=theme)
    client = logged_in(user)
    for url in (reverse("conversation_list"), URL, reverse("account_export")):
        head = client.get(url).content.decode().split("<head>")[0]
        if attribute is None:
            assert "data-theme" not in head
        else:
            assert f'<html lang="en" data-theme="{attribute}">' in head


def test_a_visitor_gets_no_theme_and_one_query_reads_the_preferences(django_assert_num_queries):
    assert "data-theme" not in Client().get(reverse("login")).content.decode().split("<head>")[0]
    user = make_user("ada")
    Preferences.objects.create(user=user, theme="dark")
    client = logged_in(user)
    client.get(URL)  # warm: the session and user queries are the same either way
    with django_assert_num_queries(4):  # session, user, the form's preferences, the header's preferences
        client.get(URL)


def test_a_new_conversation_gets_the_default_assistant_unless_one_is_picked(assistants):
    user = make_user("ada")
    client = logged_in(user)
    client.post(reverse("conversation_new"))
    assert Conversation.objects.get(owner=user).assistant_id == "shop"  # the deployment's first

    Preferences.objects.create(user=user, default_assistant_id="counter")
    page = client.get(reverse("conversation_list")).content.decode()
    assert '<option value="counter" title' in page and "selected>Counter" in page.replace("\n", "")
    client.post(reverse("conversation_new"))
    assert Conversation.objects.filter(owner=user, assistant_id="counter").count() == 1
    client.post(reverse("conversation_new"), {"assistant": "shop"})  # picked: the pick wins
    assert Conversation.objects.filter(owner=user, assistant_id="shop").count() == 1


def test_a_default_assistant_no_longer_offered_falls_back_to_the_first(settings, assistants):
    user = make_user("ada")
    Preferences.objects.create(user=user, default_assistant_id="counter")
    settings.AGENT_ASSISTANTS = TWO_ASSISTANTS[:1]
    client = logged_in(user)
    client.post(reverse("conversation_new"))
    assert Conversation.objects.get(owner=user).assistant_id == "shop"
    assert logged_in(user).get(URL).context["form"]["default_assistant_id"].value() == ""


def _export(user: User) -> dict:
    with zipfile.ZipFile(my_data.export_zip(user=user)) as archive:
        return json.loads(archive.read("preferences.json"))


def test_my_data_holds_the_preferences_and_their_defaults_before_any_save():
    user = make_user("ada")
    assert _export(user) == {"display_name": "", "theme": "system", "default_assistant": None}
    Preferences.objects.create(user=user, display_name="Ada", theme="light", default_assistant_id="counter")
    assert _export(user) == {"display_name": "Ada", "theme": "light", "default_assistant": "counter"}
