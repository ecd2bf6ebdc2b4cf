"""What staff review keeps: who read which transcript."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TranscriptRead(models.Model):
    """A staff member opened a conversation's transcript in the admin: who, when, which, whose.

    Kept when the reader, the conversation or its owner is deleted: the names and the number stay.
    """

    reader = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reader_username = models.CharField(max_length=150)
    conversation = models.ForeignKey(
        "conversations.Conversation", null=True, on_delete=models.SET_NULL, related_name="reads"
    )
    conversation_number = models.PositiveBigIntegerField(help_text="The conversation's id, kept after it is deleted.")
    owner_username = models.CharField(max_length=150, help_text="Whose conversation it was.")
    messages_shown = models.BooleanField(help_text="Whether the reader could see the messages (view_message).")
    read_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "conversations_transcriptread"  # the table it had in the conversations app
        ordering = ["-read_at", "-id"]

    def __str__(self) -> str:
        return f"{self.reader_username} read conversation {self.conversation_number}"
