"""What a run is asked to do: one frozen value built at the API edge.

`RunOptions` travels unchanged from the request to the store, the launcher
and back out in job records. Each field says how the API names, parses and
documents it, so adding an option is adding a field here (and teaching the
launcher what it means), not editing every layer.
"""

import dataclasses
import json
from dataclasses import dataclass, field

from scrapy_do.errors import BadRequest, InvalidPayload


def normalise_payload(text):
    """Validate a payload as a JSON object and return its canonical text."""
    if text is None or str(text).strip() == "":
        return "{}"
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidPayload(f"payload is not valid JSON ({e}); send a JSON object such as {{\"key\": 1}}") from None
    except RecursionError:
        raise InvalidPayload("payload is nested too deeply; flatten it") from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise InvalidPayload(f"payload must be a JSON object such as {{\"key\": 1}}, not {kind}")
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload("payload holds an unpaired surrogate escape (like \\ud800); send valid Unicode") \
            from None
    return text


def _text(value):
    return value


def option(default=dataclasses.MISSING, *, help, parse=_text, schema=None, column=False, cli=None):
    """A RunOptions field: its API parameter (the field name), parser, JSON schema and help text.

    `column` options are stored in their own column (they are filtered on);
    the others share one JSON column. `cli` is the client's flag default.
    """
    meta = {"help": help, "parse": parse, "schema": schema or {"type": "string"}, "column": column, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunOptions:
    spider: str = option(help="spider name", column=True)
    description: str = option("", help="a short description", cli="")
    payload: str = option("{}", help="a JSON object passed to the spider as -a payload=...",
                          parse=normalise_payload, schema={"type": "string", "description": "a JSON object, as text"},
                          cli="{}")

    @classmethod
    def from_params(cls, get):
        """Build the options from `get(name) -> str | None` (a request's parameters)."""
        values = {}
        for f in dataclasses.fields(cls):
            raw = get(f.name)
            if raw is None:
                if f.default is dataclasses.MISSING:
                    raise BadRequest(f"missing parameter {f.name!r}: {f.metadata['help']}")
                continue
            values[f.name] = f.metadata["parse"](raw)
        return cls(**values)

    def stored(self):
        """The options kept in the shared JSON column, as text."""
        return json.dumps({f.name: getattr(self, f.name) for f in OPTION_FIELDS if not f.metadata["column"]},
                          ensure_ascii=False)

    @classmethod
    def from_stored(cls, text, **columns):
        """Options from their JSON column plus their own columns; unknown keys (a newer daemon's) are kept out."""
        data = json.loads(text or "{}")
        known = {f.name for f in OPTION_FIELDS}
        return cls(**{k: v for k, v in data.items() if k in known}, **columns)


OPTION_FIELDS = tuple(dataclasses.fields(RunOptions))
