"""What users own: conversations and their messages (with the agent's tool steps)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


def default_assistant_id() -> str:
    """The first assistant of `AGENT_ASSISTANTS`: what a new conversation gets unless one is chosen."""
    from conversations.assistants import assistant_default_id

    return assistant_default_id()


class Conversation(models.Model):
    """A user's chat with the agent."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    title_set_by_user = models.BooleanField(
        default=False, help_text="The owner named it: automatic titles leave it alone."
    )
    assistant_id = models.CharField(
        max_length=100,
        default=default_assistant_id,
        db_index=True,
        help_text="The assistant that answers (an id from AGENT_ASSISTANTS).",
    )
    model = models.CharField(
        max_length=100,
        blank=True,
        help_text="The model the owner chose among the assistant's; empty: the assistant's default.",
    )
    leaf = models.ForeignKey(
        "Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The last message of the branch on screen (every tab shows the same one).",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        indexes = [models.Index(fields=["owner", "-updated"], name="conversation_owner_recent")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    """A user message, or the assistant's answer with the tool steps that led to it."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        GENERATING = "generating"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        ERROR = "error"
        INTERRUPTED = "interrupted"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        help_text=(
            "The message this one follows: a question follows an answer, an answer its question. "
            "Siblings are versions (an edited question, a regenerated answer); none for the first question."
        ),
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    run_id = models.CharField(max_length=64, blank=True, db_index=True)
    client_id = models.CharField(max_length=64, null=True, blank=True)
    tool_steps = models.JSONField(default=list, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True, help_text="The server process writing the answer.")
    heartbeat = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of that process.")
    stop_requested = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    first_token_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds from the run's start to its first answer text or tool call."
    )
    duration_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds from the run's start to its end."
    )

    class Meta:
        ordering = ["created", "id"]
        # The usage page and the review filters read answers by role over a period.
        indexes = [models.Index(fields=["role", "created"], name="message_role_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="message_client_id_unique_per_conversation"
            ),
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="generating"),
                name="one_generating_message_per_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk} ({self.status})"


class Feedback(models.Model):
    """The owner's thumbs up or down on an answer, with an optional comment; changeable, one per user."""

    class Rating(models.IntegerChoices):
        UP = 1, "👍"
        DOWN = -1, "👎"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True, max_length=2000)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated", "-id"]
        verbose_name_plural = "feedback"
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="feedback_one_per_message_per_user"),
            models.CheckConstraint(condition=Q(rating__in=[1, -1]), name="feedback_rating_up_or_down"),
        ]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on message {self.message_id}"


class ToolApproval(models.Model):
    """A tool call that waited for a person: what was asked, and who decided what, when."""

    class Decision(models.TextChoices):
        APPROVED = "approved"
        DENIED = "denied"
        EXPIRED = "expired"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="approvals")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="approvals")
    run_id = models.CharField(max_length=64, db_index=True)
    approval_id = models.CharField(max_length=64, unique=True)
    call_id = models.CharField(max_length=200)
    tool = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    requested_at = models.DateTimeField(auto_now_add=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True, help_text="Empty while it waits.")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["requested_at", "id"]

    def __str__(self) -> str:
        return f"{self.tool} ({self.decision or 'waiting'})"


class Budget(models.Model):
    """How many tokens a user, or each member of a group, may spend per day and per month (UTC).

    Set on a user or on a group, never both. A field left empty falls back: a user's to their groups'
    (the most generous of them), a group's to the deployment's `QUOTA_TOKENS_PER_DAY` / `_MONTH`.
    0 means no limit.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="token_budget"
    )
    group = models.OneToOneField(
        "auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="token_budget"
    )
    tokens_per_day = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="0: no limit; empty: the group's or the deployment's."
    )
    tokens_per_month = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="0: no limit; empty: the group's or the deployment's."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False),
                name="budget_for_a_user_or_a_group",
            ),
        ]

    def __str__(self) -> str:
        return f"Budget of {self.user or self.group}"


class Preferences(models.Model):
    """A user's own settings: the name shown, the page's theme, the assistant of a new conversation."""

    class Theme(models.TextChoices):
        SYSTEM = "system", "Same as the system"
        LIGHT = "light", "Light"
        DARK = "dark", "Dark"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    display_name = models.CharField(max_length=80, blank=True)
    theme = models.CharField(max_length=16, choices=Theme.choices, default=Theme.SYSTEM)
    default_assistant_id = models.CharField(
        max_length=100, blank=True, help_text="An id from AGENT_ASSISTANTS; empty: the deployment's first."
    )

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"Preferences of {self.user}"
