"""HTTP URLs of the product."""

from django.contrib.auth import views as auth_views
from django.urls import path

from conversations import views
from conversations.throttling import login_throttle

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("accounts/login/", login_throttle(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("conversations/new/", views.conversation_new, name="conversation_new"),
    path("conversations/search/", views.conversation_search_results, name="conversation_search"),
    path("conversations/<int:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path(
        "conversations/<int:conversation_id>/delete/",
        views.conversation_remove,
        name="conversation_delete",
    ),
]
