"""HTTP URLs of the product."""

from django.urls import path

from conversations import views

urlpatterns = [
    path("", views.conversation_list, name="conversation_list"),
    path("conversations/new/", views.conversation_new, name="conversation_new"),
    path("conversations/search/", views.conversation_search_results, name="conversation_search"),
    path("conversations/<int:conversation_id>/", views.conversation_detail, name="conversation_detail"),
    path(
        "conversations/<int:conversation_id>/delete/",
        views.conversation_remove,
        name="conversation_delete",
    ),
]
