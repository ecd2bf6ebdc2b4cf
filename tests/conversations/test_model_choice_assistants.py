"""Assistants offering several models, for the model-choice tests (and the live servers they start,
through AGENT_ASSISTANTS). No tests here."""

from __future__ import annotations

from agent_runtime.assistants import Assistant


class TwoModels(Assistant):
    """Offers two models, the first the default."""

    id = "two-models"
    name = "Two models"
    description = "Answers with the model its owner picks."
    instructions = "You answer briefly."
    models = ["gpt-4o-mini", "gpt-4o"]


class OneModel(Assistant):
    """Offers only its `model`."""

    id = "one-model"
    name = "One model"
    model = "solo-model"


TWO_MODELS = f"{__name__}.TwoModels"
ONE_MODEL = f"{__name__}.OneModel"
