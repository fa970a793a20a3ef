"""Hostile ``stable-pose-body`` documents: every one gets one :class:`BodyDataError` naming what is wrong."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest

from stablepose_core.body.bodies import MAX_PEOPLE, BodyBatch, BodyDataError, FittedPerson, FrameBodies
from stablepose_core.body.model import DOF_NAMES
from stablepose_core.body.plausibility import Plausibility


def _document() -> dict[str, Any]:
    person = FittedPerson(
        source=0, rotation=(0.0, 0.0, 0.1), translation=(0.0, 0.2, 3.0), dofs=(0.0,) * len(DOF_NAMES),
        phenotype=(0.5,) * 6, focal=512.0, joints_2d=((100.0, 100.0),) * 17, box=(90.0, 90.0, 200.0, 400.0),
        yaw_deg=5.0, verdict=Plausibility(0.4, True, 0.3, 0.2, 0.1, 3.0, ("nose",)),
    )  # fmt: skip
    return json.loads(BodyBatch((FrameBodies(512, 512, (person,)),)).to_json())


def _with(path: tuple[Any, ...], value: Any) -> str:
    document = copy.deepcopy(_document())
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(document)


def test_a_valid_document_round_trips() -> None:
    text = json.dumps(_document())
    assert json.loads(BodyBatch.from_json(text).to_json()) == json.loads(text)


PERSON = ("frames", 0, "people", 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        ("[]", "not a body file"),
        (_with(("format",), "stable-pose-coco17"), "not a body file"),
        (_with(("version",), 2), "unsupported body file version"),
        (_with(("frames",), []), "1 to"),
        (_with(("frames", 0), 7), "frame 0: must be an object"),
        (_with(("frames", 0, "width"), 0), "frame 0: width must be a positive integer"),
        (_with(("frames", 0, "height"), 10**6), "larger than"),
        (_with(("frames", 0, "people"), [{}] * (MAX_PEOPLE + 1)), "at most"),
        (_with(("frames", 0, "skipped"), [{"person": "x", "reason": 1}]), "skipped"),
        (_with((*PERSON, "dofs"), [0.0] * 3), "dofs must be"),
        (_with((*PERSON, "rotation"), [math.nan, 0, 0]), "rotation must be 3 finite numbers"),
        (_with((*PERSON, "translation"), [0, 0, -1]), "in front of it"),
        (_with((*PERSON, "focal"), 0), "positive focal"),
        (_with((*PERSON, "verdict", "score"), "high"), "score must be 1 finite number"),
        (_with((*PERSON, "verdict", "plausible"), "yes"), "plausible true or false"),
        (_with((*PERSON, "verdict"), []), "verdict must be an object"),
        (_with((*PERSON, "joints_2d"), [[0, 0]] * 3), "joints_2d must list 17"),
        (_with((*PERSON, "verdict", "worst_joints"), ["x" * 100]), "worst_joints"),
        (_with(PERSON, {"source": 0}), "missing"),
    ],
)
def test_hostile_documents_get_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(BodyDataError, match=message):
        BodyBatch.from_json(text)
