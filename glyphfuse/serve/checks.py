"""The checks of a ``POST /api/sample`` body, before anything is queued.

    limits = Limits()
    request = parse_sample_request(body_bytes, base_config, limits)   # or BadRequest (4xx + why)
    request.text, request.settings                                     # what the worker draws

The body is one JSON object with the fields of :data:`FIELDS` only (``prompt`` required; a field
left out or ``null`` takes its default; no seed = a random one). Refused with a :class:`BadRequest`
that names the reason: a body that is not UTF-8 JSON or too large, JSON's non-finite numbers
(``NaN``, ``Infinity``: Python's json reads them, JSON does not have them), unknown fields (so no
request can name a file or any setting of the server), wrong types (``true`` is no integer),
values outside :class:`Limits`, a prompt longer than the model reads. The scene controls
(``style``, ``text_color``, ``background_color``: a colour model's, glyphfuse.core.controls) are
strings or ``null``; a kind the model does not draw, a colour that is neither a name nor
``#RRGGBB``, or any of them sent to a model without scene controls is refused.

``POST /api/edit`` sends the picture as the body and everything else in the query string:

    request = parse_edit_query(request.query_params.multi_items(), edit_config, limits)
    request.text, request.box, request.settings                        # the box checked later, against the picture

Its fields are :data:`EDIT_FIELDS` (``text`` and ``box`` required), each at most once; an empty
value is one left out. The same checks as above, on the edit model's config; ``box`` is
``X,Y,W,H``, four whole numbers of picture pixels (:func:`check_edit_box` checks it against the
opened picture and the text).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass

from glyphfuse.core.config import ModelConfig
from glyphfuse.core.controls import NAMED_COLORS, parse_color
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.editing.geometry import check_box, parse_box
from glyphfuse.editing.pictures import MAX_PIXELS
from glyphfuse.sampling.generation import parse_prompt
from glyphfuse.sampling.inputs import check_prompt_lengths
from glyphfuse.sampling.settings import SamplingSettings

FIELDS = ("prompt", "candidates", "seed", "steps", "guidance", "style", "text_color", "background_color")
SCENE_FIELDS = ("style", "text_color", "background_color")  # a colour model's scene controls
EDIT_FIELDS = ("text", "box", "candidates", "seed", "steps", "guidance", "style", "text_color", "background_color")
MAX_CONTROL_CHARS = 32  # longer than any colour name, kind or #RRGGBB
MAX_JSON_SEED = 2**53 - 1  # JavaScript reads JSON numbers as doubles: larger seeds would not round-trip
DEFAULTS = SamplingSettings()


class BadRequest(Exception):
    """A request the server refuses: ``status`` (4xx) and a message that says why."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (each candidate is a full image of work; each step one network call)."""

    prompt_chars: int = 200
    candidates: int = 16
    steps: int = 250
    guidance: float = 20.0  # guidance in [0, this]
    body_bytes: int = 16_384
    edit_bytes: int = 20_000_000  # the picture of POST /api/edit (its body)
    edit_pixels: int = MAX_PIXELS  # ... and its width x height, read from its header before it is decoded

    def to_dict(self) -> dict:
        return {"prompt_chars": self.prompt_chars, "candidates": self.candidates, "steps": self.steps,
                "guidance": [0.0, self.guidance], "seed": [0, MAX_JSON_SEED], "body_bytes": self.body_bytes}


@dataclass(frozen=True)
class SampleRequest:
    text: str  # the prompt as drawn (a literal backslash-n is a line break, as on the command line)
    settings: SamplingSettings


@dataclass(frozen=True)
class EditRequest:
    text: str  # the text to write, as for SampleRequest
    box: tuple[int, int, int, int]  # (x, y, w, h) in picture px; not yet checked against the picture
    settings: SamplingSettings


def _no_constant(name: str):
    raise BadRequest(f"{name} is not a JSON number: only finite numbers are allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"the number {text[:20]} is too large: only finite numbers are allowed")
    return value


def decode_json(body: bytes, limits: Limits) -> dict:
    """The JSON object of ``body``; BadRequest when it is too large, not UTF-8 JSON or no object."""
    if len(body) > limits.body_bytes:
        raise BadRequest(f"the request body is larger than {limits.body_bytes} bytes", 413)
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, an integer of too many digits, nesting
        raise BadRequest(f"the request body is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(data).__name__}")
    return data


def _integer(data: dict, name: str, low: int, high: int, default: int | None) -> int | None:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{name} must be an integer, got {json.dumps(value)[:40]}")
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}")
    return value


def _number(data: dict, name: str, low: float, high: float, default: float) -> float:
    value = data.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{name} must be a number, got {json.dumps(value)[:40]}")
    if not low <= value <= high:  # non-finite numbers never get here (decode_json)
        raise BadRequest(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def _scene_controls(data: dict, config: ModelConfig) -> dict[str, str | None]:
    """The scene controls of the request, each a string or None (not given). BadRequest for any
    of them sent to a model without scene controls, a non-string, a kind the model does not draw,
    a colour that is neither a colour name nor #RRGGBB."""
    given = {name: data.get(name) for name in SCENE_FIELDS}
    sent = [name for name, value in given.items() if value is not None]
    if sent and not config.scene_kinds:
        raise BadRequest(f"model {config.name!r} has no scene controls ({', '.join(SCENE_FIELDS)}): it is not a colour scene model; "
                         f"leave out {', '.join(sent)}")
    for name in sent:
        value = given[name]
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string or null, got {json.dumps(value)[:40]}")
        shown = json.dumps(value[:MAX_CONTROL_CHARS]) + ("..." if len(value) > MAX_CONTROL_CHARS else "")
        if name == "style":
            if value not in config.scene_kinds:
                raise BadRequest(f"unknown style {shown}; choose one of: {', '.join(config.scene_kinds)} (or null: drawn at random)")
            continue
        try:
            if len(value) > MAX_CONTROL_CHARS:
                raise GlyphfuseError("too long")
            parse_color(value, name)
        except GlyphfuseError:
            raise BadRequest(f"{name} {shown} is neither #RRGGBB nor a colour name ({', '.join(sorted(NAMED_COLORS))})") from None
        given[name] = value.strip()  # parse_color allows spaces around; the settings (and the log) get none
    return given


def _prompt(data: dict, config: ModelConfig, limits: Limits, name: str = "prompt") -> str:
    if name not in data or data[name] is None:
        raise BadRequest(f"{name} is missing: give the text to write")
    prompt = data[name]
    if not isinstance(prompt, str):
        raise BadRequest(f"{name} must be a string, got {type(prompt).__name__}")
    if len(prompt) > limits.prompt_chars:
        raise BadRequest(f"{name} is {len(prompt)} characters, more than the {limits.prompt_chars} allowed")
    text = parse_prompt(prompt).replace("\r\n", "\n")
    if not text.strip():
        raise BadRequest(f"{name} is empty: give the text to write")
    if any(ord(char) < 32 and char != "\n" for char in text):
        raise BadRequest(f"{name} holds a control character (only line breaks are allowed)")
    try:
        check_prompt_lengths([text], config)
    except GlyphfuseError as exc:
        raise BadRequest(str(exc)) from None
    return text


def check_sample_request(data: dict, config: ModelConfig, limits: Limits) -> SampleRequest:
    """The checked request of a decoded body (see the module docstring); BadRequest otherwise."""
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}; the fields are {', '.join(FIELDS)}")
    text = _prompt(data, config, limits)
    return SampleRequest(text=text, settings=_settings(data, config, limits))


def _settings(data: dict, config: ModelConfig, limits: Limits) -> SamplingSettings:
    """The sampling settings of a request: candidates, seed, steps, guidance, scene controls."""
    steps_cap = min(limits.steps, config.diffusion.num_timesteps)
    candidates = _integer(data, "candidates", 1, limits.candidates, DEFAULTS.candidates)
    seed = _integer(data, "seed", 0, MAX_JSON_SEED, None)
    controls = _scene_controls(data, config)
    settings = SamplingSettings(
        steps=_integer(data, "steps", 1, steps_cap, min(DEFAULTS.steps, steps_cap)),
        guidance=_number(data, "guidance", 0.0, limits.guidance, DEFAULTS.guidance),
        candidates=candidates,
        seed=seed if seed is not None else secrets.randbelow(2**32),
        **controls,
    )
    try:
        settings.validate()
    except GlyphfuseError as exc:
        raise BadRequest(str(exc)) from None
    return settings


def parse_sample_request(body: bytes, config: ModelConfig, limits: Limits) -> SampleRequest:
    """decode_json + check_sample_request."""
    return check_sample_request(decode_json(body, limits), config, limits)


# -- POST /api/edit: the query string -------------------------------------------------------------

INTEGER_FIELDS = ("candidates", "seed", "steps")
MAX_QUERY_DIGITS = 20  # longer than any seed; a longer run of digits is reported, never converted


def _query_value(name: str, text: str):
    """A query value as the JSON body would hold it: whole numbers for the integer fields, a
    finite number for guidance; anything else stays a string, which the checks then refuse."""
    if name in INTEGER_FIELDS and re.fullmatch(r"-?[0-9]{1,%d}" % MAX_QUERY_DIGITS, text):
        return int(text)
    if name == "guidance" and len(text) <= MAX_QUERY_DIGITS:
        try:
            value = float(text)
        except ValueError:
            return text
        return value if math.isfinite(value) else text
    return text


def _box(data: dict) -> tuple[int, int, int, int]:
    """``box``: X,Y,W,H as four whole numbers of picture pixels, W and H at least 1 (parse_box)."""
    text = data.get("box")
    if text is None:
        raise BadRequest("box is missing: give X,Y,W,H, the place in the picture's pixels where the text goes (e.g. box=40,60,300,80)")
    try:
        return parse_box(text, name="box")
    except GlyphfuseError as exc:
        raise BadRequest(str(exc)) from None


def parse_edit_query(items: list[tuple[str, str]], config: ModelConfig, limits: Limits) -> EditRequest:
    """The checked request of the query string of ``POST /api/edit`` (``items``: its (name, value)
    pairs in order), for the edit model's ``config``; BadRequest otherwise (see the module docstring)."""
    names = [name for name, _ in items]
    unknown = sorted(set(names) - set(EDIT_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))[:200]}; the fields are {', '.join(EDIT_FIELDS)} "
                         "(in the query string; the picture is the request body)")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise BadRequest(f"{', '.join(twice)} given more than once")
    data = {name: _query_value(name, value) for name, value in items if value != ""}
    text = _prompt(data, config, limits, name="text")
    box = _box(data)
    return EditRequest(text=text, box=box, settings=_settings(data, config, limits))


def check_edit_box(request: EditRequest, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The request's box as (left, top, right, bottom) in a picture of ``size``; BadRequest when
    it reaches outside the picture or is too small for the text (glyphfuse.editing.geometry)."""
    try:
        return check_box(request.box, size, request.text)
    except GlyphfuseError as exc:
        raise BadRequest(str(exc)) from None
