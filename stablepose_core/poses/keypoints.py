"""COCO-17 pose keypoints, the structure every pose in the pack travels in.

Stable-Pose's pose images (official ``ldm/data/dataset_pose.py``, following HumanSD) are drawn from COCO-17
keypoints of up to 10 people in pixel coordinates of the image; :class:`PoseKeypoints` holds exactly that, plus
the canvas size, and converts to and from ComfyUI's ``POSE_KEYPOINT`` frames (comfyui_controlnet_aux's OpenPose
JSON) and its own small JSON file format.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .formats import (
    COCO17_NAMES,
    VISIBILITY_THRESHOLD,
    PoseDataError,
    from_coco17,
    layout_for_joint_count,
    to_coco17,
)

__all__ = [
    "COCO17_FLIP_PAIRS",
    "COCO17_LIMBS",
    "COCO17_NAMES",
    "JSON_FORMAT",
    "MAX_CANVAS_SIZE",
    "VISIBILITY_THRESHOLD",
    "PoseDataError",
    "PoseKeypoints",
    "check_finite",
    "parse_json",
    "parse_pose_text",
    "pose_keypoint_frames",
]

# The 16 limbs of the official ``pose_skeleton`` (humanart.yaml), in drawing order; limb i gets colour i.
COCO17_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (5, 11), (6, 12), (11, 13), (12, 14), (13, 15), (14, 16),
)  # fmt: skip
# (left, right) joint pairs: a horizontal flip swaps them, so limb colours keep meaning "left" and "right".
COCO17_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
JSON_FORMAT = "stable-pose-coco17"
# The largest canvas side a pose document may ask for (the editor's width/height widgets stop here too): a pose
# is drawn at its canvas size, so an unchecked size in a file could ask for tens of GB.
MAX_CANVAS_SIZE = 8192
# The optional 3D points of a POSE_KEYPOINT person (BlazePose's world landmarks): flat [x, y, z, c, ...] in metres.
WORLD_KEY = "pose_keypoints_3d"
# A rescale whose x and y factors differ by less than this (crop offsets are rounded) keeps the 3D points.
WORLD_SCALE_TOLERANCE = 0.01


def parse_json(text: str, what: str = "pose JSON") -> Any:
    """``json.loads`` whose every failure (syntax, absurd nesting) is one :class:`PoseDataError`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise PoseDataError(f"{what} is not valid JSON: {error}") from None
    except RecursionError:
        raise PoseDataError(f"{what} is nested too deeply to be a pose") from None


def check_finite(**numbers: float) -> None:
    """Refuse a NaN or infinite parameter by its name (ComfyUI's min/max validation lets NaN through an API
    prompt, and a NaN parameter would otherwise surface as bad keypoints or a black image)."""
    for name, value in numbers.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def canvas_side(name: str, value: Any) -> int:
    """A canvas width/height read from pose data: a whole number of pixels in 1..``MAX_CANVAS_SIZE``."""
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < 1:
        raise PoseDataError(f"{name} must be a positive integer number of pixels, got {_short(value)}")
    if value > MAX_CANVAS_SIZE:
        raise PoseDataError(
            f"{name} {int(value)} is larger than {MAX_CANVAS_SIZE} px, the largest canvas the pack draws; "
            "scale the pose down first"
        )
    return int(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value: Any) -> bool:
    """A finite JSON number that float32 can hold (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value) and abs(float(value)) <= float(np.finfo(np.float32).max)
    except OverflowError:  # an int beyond float's range
        return False


def coco17_people(people: Any) -> np.ndarray:
    """``(P, 17, 3)`` float32 from a list of people, each 17 ``[x, y, confidence]`` number triples."""
    if not isinstance(people, list):
        raise PoseDataError(
            f'"people" must be a list of people, each 17 [x, y, confidence] joints, got {_short(people)}'
        )
    for index, person in enumerate(people):
        if not isinstance(person, list) or len(person) != len(COCO17_NAMES):
            count = len(person) if isinstance(person, list) else type(person).__name__
            raise PoseDataError(f"person {index} must have {len(COCO17_NAMES)} COCO-17 joints, got {count}")
        for joint, values in enumerate(person):
            if not (isinstance(values, list) and len(values) == 3 and all(_is_number(v) for v in values)):
                raise PoseDataError(
                    f"person {index}, joint {joint} ({COCO17_NAMES[joint]}) must be [x, y, confidence] numbers, "
                    f"got {_short(values)}"
                )
    return np.asarray(people, dtype=np.float32).reshape(len(people), len(COCO17_NAMES), 3)


def parse_pose_text(text: str, what: str = "pose JSON") -> PoseKeypoints:
    """A pose pasted or saved as text: a ``stable-pose-coco17`` document or a ``POSE_KEYPOINT`` frame (or a list
    holding one frame), so a pose copied from elsewhere can be used. Every problem is a :class:`PoseDataError`
    naming ``what``."""
    return pose_from_data(parse_json(text, what), what)


def pose_from_data(data: Any, what: str = "pose JSON") -> PoseKeypoints:
    """:func:`parse_pose_text` for JSON already parsed (:func:`parse_json`)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise PoseDataError(f"{what} must be a JSON object, got {type(data).__name__}")
    if data.get("format") == JSON_FORMAT:
        return PoseKeypoints.from_document(data)
    if is_pose_keypoint_frame(data):
        return PoseKeypoints.from_pose_keypoint(data)
    raise PoseDataError(f'{what} must be a "{JSON_FORMAT}" document or a POSE_KEYPOINT frame')


def is_pose_keypoint_frame(data: Any) -> bool:
    """Whether ``data`` looks like one ``POSE_KEYPOINT`` frame (people and a canvas size)."""
    return isinstance(data, dict) and all(key in data for key in ("people", "canvas_width", "canvas_height"))


def pose_keypoint_frames(pose_keypoint: Any) -> list[Any]:
    """The frames of a ``POSE_KEYPOINT`` value (one frame dict, or a list of them as comfyui_controlnet_aux
    passes them); raises :class:`PoseDataError` when there are none."""
    if not isinstance(pose_keypoint, dict | list | tuple):
        raise PoseDataError(f"pose_keypoint must be a frame or a list of frames, got {type(pose_keypoint).__name__}")
    frames = [pose_keypoint] if isinstance(pose_keypoint, dict) else list(pose_keypoint)
    if not frames:
        raise PoseDataError("pose_keypoint input is empty (no frames)")
    return frames


def _point_list(index: int, person: dict, key: str, fields: str) -> np.ndarray | None:
    """``(J, n)`` points of ``person[key]`` (flat or nested; ``fields`` names the n values), or None when the list
    is missing or empty."""
    values = person.get(key)
    if values is None or values == []:
        return None  # e.g. hands or face only
    if not isinstance(values, list):
        raise PoseDataError(f"person {index}: {key} must be a list of numbers, got {_short(values)}")
    size = len(fields.split(", "))
    if all(isinstance(v, list) for v in values):
        odd = next((j for j, v in enumerate(values) if len(v) != size), None)
        if odd is not None:
            raise PoseDataError(
                f"person {index}: {key} keypoint {odd} has {len(values[odd])} values; each must be [{fields}]"
            )
        values = [v for point in values for v in point]
    if not all(_is_number(v) for v in values):
        bad = next(v for v in values if not _is_number(v))
        raise PoseDataError(f"person {index}: {key} must hold finite numbers, found {_short(bad)}")
    if len(values) % size:
        raise PoseDataError(f"person {index}: {key} length {len(values)} is not a multiple of {size}")
    return np.asarray(values, dtype=np.float32).reshape(-1, size)


def _frame_person(index: int, person: Any, width: int, height: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    """One ``POSE_KEYPOINT`` person -> COCO-17 ``(17, 3)`` in pixels and its ``(17, 4)`` 3D points (or None), or
    None without body points."""
    if not isinstance(person, dict):
        raise PoseDataError(f"person {index}: must be an object with pose_keypoints_2d, got {type(person).__name__}")
    points = _point_list(index, person, "pose_keypoints_2d", "x, y, confidence")
    if points is None:
        return None
    present = points[:, 2] > 0
    if present.any() and np.all(np.abs(points[present, :2]) <= 1):
        points = points * np.array([width, height, 1], np.float32)
    layout = layout_for_joint_count(len(points))
    world = _point_list(index, person, WORLD_KEY, "x, y, z, confidence")
    if world is not None and len(world) != len(points):
        raise PoseDataError(
            f"person {index}: {WORLD_KEY} has {len(world)} points but pose_keypoints_2d has {len(points)}; "
            "give one [x, y, z, confidence] per 2D point, in the same order"
        )
    return to_coco17(points[None], layout)[0], None if world is None else to_coco17(world[None], layout)[0]


def checked_keypoints(keypoints: Any, axes: str, width: int, height: int) -> np.ndarray:
    """Keypoints as float32 ``(<axes>, 17, 3)`` (``axes``: ``"people"`` or ``"frames, people"``), finite, on a canvas
    of positive size; else :class:`.formats.PoseDataError` saying what is wrong."""
    points = np.asarray(keypoints, dtype=np.float32)
    leading = axes.count(",") + 1
    if points.ndim != leading + 2 or points.shape[leading:] != (len(COCO17_NAMES), 3):
        raise PoseDataError(f"keypoints must be shaped ({axes}, 17, 3), got {points.shape}")
    if not np.isfinite(points).all():
        raise PoseDataError("keypoints contain NaN or infinite values")
    if int(width) < 1 or int(height) < 1:
        raise PoseDataError(f"canvas size must be positive, got {width}x{height}")
    return points


def checked_world(world: Any, people: tuple[int, ...]) -> np.ndarray | None:
    """3D points (:attr:`PoseKeypoints.world`) as float32 ``(*people, 17, 4)``, or None."""
    if world is None:
        return None
    world = np.asarray(world, dtype=np.float32)
    shape = (*people, len(COCO17_NAMES), 4)
    if world.shape != shape:
        raise PoseDataError(f"world points must be shaped {shape} like the keypoints, got {world.shape}")
    if not np.isfinite(world).all():
        raise PoseDataError("world points contain NaN or infinite values")
    return world


def _flip_permutation() -> np.ndarray:
    order = np.arange(len(COCO17_NAMES))
    for left, right in COCO17_FLIP_PAIRS:
        order[left], order[right] = right, left
    return order


_FLIP_ORDER = _flip_permutation()


@dataclass(frozen=True, eq=False)
class PoseKeypoints:
    """People × 17 COCO joints × (x, y, confidence), float32, in pixels of a ``width`` × ``height`` canvas.

    A joint counts as present when its confidence is above :data:`VISIBILITY_THRESHOLD` (0.02, the official
    ``keypoint_thresh``) and it lies on the canvas (``0 <= x < width``, ``0 <= y < height``): the official data
    pipeline drops every other joint before drawing (albumentations' ``remove_invisible``). Conversions write
    absent joints as ``(0, 0, 0)``; transforms move hidden joints along with the others. Instances are immutable;
    every transform returns a new one.

    ``world``, when the detector gives one (the built-in BlazePose's world landmarks), holds the same people and
    joints in 3D: ``(people, 17, 4)`` = x, y, z in metres, origin at the hips' centre, x to the image right, y down,
    z away from the camera, and a confidence (0: no 3D point). Uniform rescales and the flip keep it (the flip
    mirrors x); any other transform returns a pose without it.
    """

    keypoints: np.ndarray
    width: int
    height: int
    world: np.ndarray | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.keypoints, dtype=np.float32)
        if points.size == 0:
            points = points.reshape(0, len(COCO17_NAMES), 3)
        points = checked_keypoints(points, "people", self.width, self.height)
        object.__setattr__(self, "keypoints", points)
        object.__setattr__(self, "world", checked_world(self.world, points.shape[:1]))
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def empty(cls, width: int, height: int) -> PoseKeypoints:
        """No people on a ``width`` × ``height`` canvas."""
        return cls(np.zeros((0, len(COCO17_NAMES), 3), np.float32), width, height)

    @property
    def num_people(self) -> int:
        return self.keypoints.shape[0]

    @property
    def visible(self) -> np.ndarray:
        """Bool ``(people, 17)``: the joints that are drawn (confident enough and on the canvas)."""
        x, y, confidence = np.moveaxis(self.keypoints, -1, 0)
        on_canvas = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        return (confidence > VISIBILITY_THRESHOLD) & on_canvas

    # --- geometry -------------------------------------------------------------------------------------------
    def _affine(
        self,
        scale: tuple[float, float],
        shift: tuple[float, float],
        width: int,
        height: int,
        order: np.ndarray | None = None,
    ) -> PoseKeypoints:
        """``x * scale + shift`` on every joint (reordered by ``order``); hidden joints move too, keeping their place
        relative to the body (an editor can show them again). The 3D points follow a uniform scale (mirrored with
        a negative one) and are dropped by a stretch, which they would contradict."""
        points = (self.keypoints if order is None else self.keypoints[:, order]).copy()
        points[..., :2] = points[..., :2] * np.float32(scale) + np.float32(shift)
        world = None
        if self.world is not None and math.isclose(*map(abs, scale), rel_tol=WORLD_SCALE_TOLERANCE):
            world = (self.world if order is None else self.world[:, order]) * np.float32([*np.sign(scale), 1, 1])
        return PoseKeypoints(points, width, height, world)

    def scale_to(self, width: int, height: int) -> PoseKeypoints:
        """Stretch onto a ``width`` × ``height`` canvas (x and y scaled independently, like a resize)."""
        return self._affine((width / self.width, height / self.height), (0, 0), width, height)

    def fit_to_canvas(self, width: int, height: int) -> PoseKeypoints:
        """Scale uniformly so the whole canvas fits in ``width`` × ``height``, centred (letterboxing, no stretch)."""
        scale = min(width / self.width, height / self.height)
        shift = ((width - self.width * scale) / 2, (height - self.height * scale) / 2)
        return self._affine((scale, scale), shift, width, height)

    def crop_to_canvas(self, width: int, height: int) -> PoseKeypoints:
        """Centre-crop to the ``width`` : ``height`` aspect ratio, then scale to ``width`` × ``height``: what ComfyUI's
        ``common_upscale(..., "center")`` does to an image (crop offsets rounded the same way), so what Apply
        Stable-Pose does to a pose image of another aspect ratio. Joints cut off end up off the canvas."""
        old_aspect, new_aspect = self.width / self.height, width / height
        x = round((self.width - self.width * (new_aspect / old_aspect)) / 2) if old_aspect > new_aspect else 0
        y = round((self.height - self.height * (old_aspect / new_aspect)) / 2) if old_aspect < new_aspect else 0
        scale = (width / (self.width - 2 * x), height / (self.height - 2 * y))
        return self._affine(scale, (-x * scale[0], -y * scale[1]), width, height)

    def flip_horizontal(self) -> PoseKeypoints:
        """Mirror left-right and swap every left joint with its right twin.

        ``x -> width - 1 - x``, albumentations' ``HorizontalFlip`` rule used in the official training; unlike
        that pipeline (which kept the labels), the labels are swapped so a mirrored person's left arm is still
        drawn in the left-arm colour.
        """
        return self._affine((-1, 1), (self.width - 1, 0), self.width, self.height, order=_FLIP_ORDER)

    # --- our JSON file format -------------------------------------------------------------------------------
    def to_json(self, indent: int | None = None) -> str:
        """``{"format": "stable-pose-coco17", "width", "height", "joints", "people": [[[x, y, c] × 17], ...]}``."""
        return json.dumps(
            {
                "format": JSON_FORMAT,
                "width": self.width,
                "height": self.height,
                "joints": list(COCO17_NAMES),
                "people": self.keypoints.tolist(),
            },
            indent=indent,
        )

    @classmethod
    def from_json(cls, text: str) -> PoseKeypoints:
        """Parse :meth:`to_json` output (``joints`` is optional, but must be COCO-17's if given)."""
        return cls.from_document(parse_json(text))

    @classmethod
    def from_document(cls, data: Any) -> PoseKeypoints:
        """:meth:`from_json` on an already decoded document; every problem is a :class:`PoseDataError`."""
        if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
            raise PoseDataError(f"not a {JSON_FORMAT} JSON document (for ComfyUI POSE_KEYPOINT use from_pose_keypoint)")
        if data.get("joints", list(COCO17_NAMES)) != list(COCO17_NAMES):
            raise PoseDataError("joints must be the COCO-17 names in COCO order")
        people = coco17_people(data.get("people"))
        return cls(people, canvas_side("width", data.get("width")), canvas_side("height", data.get("height")))

    # --- ComfyUI POSE_KEYPOINT frames (comfyui_controlnet_aux) ------------------------------------------------
    @classmethod
    def from_pose_keypoint(cls, frame: dict[str, Any], default_size: tuple[int, int] | None = None) -> PoseKeypoints:
        """Read one ``POSE_KEYPOINT`` frame: ``{"people": [{"pose_keypoints_2d": [...]}], "canvas_width", ...}``.

        ``pose_keypoints_2d`` may be flat ``[x, y, c, ...]`` or nested ``[[x, y, c], ...]``, with 18 (BODY-18)
        or 25 (BODY-25) points; coordinates may be pixels (DWPose) or normalised to [0, 1] (OpenPose), decided
        per person as comfyui_controlnet_aux does (normalised when every present point lies within [0, 1]).
        ``default_size`` = (width, height) is used when the frame has no canvas size (OpenPose's own JSON).
        People without body keypoints (e.g. hands only) are skipped. A canvas side in the frame must be at most
        :data:`MAX_CANVAS_SIZE`; anything malformed is a :class:`PoseDataError`.
        """
        if not isinstance(frame, dict):
            raise PoseDataError(f"a POSE_KEYPOINT frame must be a dict, got {type(frame).__name__}")
        width, height = frame.get("canvas_width"), frame.get("canvas_height")
        if width is None or height is None:
            if default_size is None:
                raise PoseDataError(
                    "POSE_KEYPOINT frame has no canvas_width/canvas_height and no default size was given"
                )
            width, height = default_size
        else:
            width, height = canvas_side("canvas_width", width), canvas_side("canvas_height", height)
        listed = frame.get("people")
        if not isinstance(listed, list | None):
            raise PoseDataError(f"POSE_KEYPOINT 'people' must be a list of people, got {type(listed).__name__}")
        found = [_frame_person(index, person, width, height) for index, person in enumerate(listed or [])]
        people = [person for person in found if person is not None]
        keypoints = np.array([points for points, _ in people], np.float32).reshape(-1, len(COCO17_NAMES), 3)
        worlds = [world for _, world in people]
        no_world = np.zeros((len(COCO17_NAMES), 4), np.float32)  # a person without 3D points among people with
        world = None if all(w is None for w in worlds) else np.stack([no_world if w is None else w for w in worlds])
        return cls(keypoints, width, height, world)

    def to_pose_keypoint(self) -> dict[str, Any]:
        """One ``POSE_KEYPOINT`` frame in OpenPose BODY-18 order, pixel coordinates, as DWPose writes it.

        Present joints get confidence 1.0 and absent ones ``(0, 0, 0)``, because comfyui_controlnet_aux's
        renderer drops any joint below 1.0; the neck is derived from the shoulders. Face and hands are null. With
        :attr:`world`, each person that has 3D points also gets ``pose_keypoints_3d``: the same 18 joints as flat
        ``[x, y, z, c, ...]`` in metres, ``c`` the 2D joint's confidence (0 where either point is absent).
        """
        confident = self.keypoints[..., 2:] > VISIBILITY_THRESHOLD
        coco = np.where(confident, np.concatenate([self.keypoints[..., :2], np.ones_like(confident)], -1), 0.0)
        people = [
            {
                "pose_keypoints_2d": [float(v) for v in person.reshape(-1)],
                "face_keypoints_2d": None,
                "hand_left_keypoints_2d": None,
                "hand_right_keypoints_2d": None,
            }
            for person in from_coco17(coco, "openpose18")
        ]
        if self.world is not None:
            known = confident & (self.world[..., 3:] > VISIBILITY_THRESHOLD)
            world = np.where(known, np.concatenate([self.world[..., :3], np.ones_like(known)], -1), 0.0)
            world18 = from_coco17(world, "openpose18")
            for entry, points, has_3d in zip(people, world18, known.any(axis=(1, 2)), strict=True):
                if has_3d:
                    entry[WORLD_KEY] = [float(v) for v in points.reshape(-1)]
        return {"people": people, "canvas_width": self.width, "canvas_height": self.height}
