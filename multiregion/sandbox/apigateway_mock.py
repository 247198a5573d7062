"""MOCK integrations of the REST API data plane: API Gateway answers from the method's configuration alone.

From the API Gateway Developer Guide ("Mock integrations for REST APIs", "Method request behavior for payloads
without mapping templates") and the API reference (Integration, IntegrationResponse, MethodResponse):

- The integration request: the request template keyed by the request's Content-Type (API Gateway takes
  `application/json` when the request has none). A content type without a template follows the
  integration's passthroughBehavior: WHEN_NO_MATCH (the default) passes the body through; WHEN_NO_TEMPLATES
  passes it only when the integration has no template at all, else a request with a payload is refused
  415; NEVER refuses an unmapped content type with 415.
- The mock's status: the integration request body must be JSON with an integer `statusCode`, which is how
  `{"statusCode": 200}` selects a response. Without one the call fails with 500 (the execution log says
  "Unable to parse statusCode. It should be an integer that is defined in the request template"; the
  developer guide's own sentence that a mock can answer its default response without a template is not
  what clients report, e.g. a root MOCK method without a template failing with that message).
- The integration response: the one whose selectionPattern matches the status (the whole status, as Java's
  `matches` does: a pattern `2\\d{2}`), else the default one (no selectionPattern); none at all is a 500
  ("No match for output mapping and no default output mapping configured"). Its statusCode must name a
  method response, else a 500 ("Output mapping refers to an invalid method response").
- Headers: each `method.response.header.{name}` of the integration response's responseParameters that the
  method response declares, from a static `'value'`, `context.*` or `stageVariables.*`; a mock has no
  integration response headers or body, so `integration.response.*` sources map to nothing.
- Body: the response template for the request's Accept type, else `application/json`'s, else the first;
  its content type is the answer's. A mock's integration response body is empty, so without a template
  the answer is empty.

Templates are Velocity (VTL). The sandbox evaluates a subset, enough for what mocks are written with:
text, `##` and `#* *#` comments, references into `$input` (`params('x')`, `params().header.get('x')`,
`body`, `json('$')`), `$context.*` and `$stageVariables.*` (plain, quiet `$!` and formal `${}`), and
`#if / #elseif / #else / #end` on `==`, `!=`, `&&`, `||`, `!` and truthiness. An undefined reference renders
as its own text, as Velocity renders it. Anything else (`#set`, `#foreach`, `$util`) is refused with a 500
whose `x-multiregion-error` says so, rather than answered wrongly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CONTENT_TYPE = "application/json"
UNPARSABLE_STATUS = ("Execution failed due to configuration error: Unable to parse statusCode. It should be an "
                     "integer that is defined in the request template.")


# ---------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class IntegrationResponse:
    status: str
    pattern: str | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    templates: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MockConfig:
    """What a deployment froze of a MOCK method."""

    request_templates: Mapping[str, str] = field(default_factory=dict)
    passthrough: str = "WHEN_NO_MATCH"
    responses: tuple[IntegrationResponse, ...] = ()
    method_responses: Mapping[str, frozenset[str]] = field(default_factory=dict)  # status -> header names


@dataclass(frozen=True)
class MockRequest:
    """The parts of a method request a mock and its templates read."""

    body: bytes
    content_type: str
    accept: str
    path: Mapping[str, str]
    querystring: Mapping[str, str]
    headers: Mapping[str, str]
    context: Mapping[str, Any]
    stage_variables: Mapping[str, str]


@dataclass(frozen=True)
class MockAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str


class MockFailure(Exception):
    """A mock API Gateway fails as a gateway response: status, message, error type, and why (the log)."""

    def __init__(self, status: int, message: str, error_type: str, why: str):
        super().__init__(why)
        self.status, self.message, self.error_type, self.why = status, message, error_type, why


def _internal(why: str) -> MockFailure:
    return MockFailure(500, "Internal server error", "InternalServerErrorException", why)


# ---------------------------------------------------------------------------------------- the integration


def respond(config: MockConfig, request: MockRequest) -> MockAnswer:
    """The answer of a MOCK integration, or MockFailure."""
    body = _integration_request(config, request)
    status = _status_of(body)
    chosen = _select(config.responses, str(status))
    declared = config.method_responses.get(chosen.status)
    if declared is None:
        raise _internal("Execution failed due to configuration error: Output mapping refers to an invalid method "
                        f"response: {chosen.status}")
    headers = _headers(chosen, declared, request)
    content_type, template = _response_template(chosen, request.accept)
    rendered = render(template, _template_input(request, "")) if template else ""
    return MockAnswer(int(chosen.status), headers, rendered.encode(), content_type)


def _media_type(value: str) -> str:
    return value.split(";")[0].strip().lower()


def _integration_request(config: MockConfig, request: MockRequest) -> str:
    content_type = _media_type(request.content_type) or DEFAULT_CONTENT_TYPE
    templates = {_media_type(k): v for k, v in config.request_templates.items()}
    if content_type in templates:
        return render(templates[content_type] or "", _template_input(request, request.body.decode(errors="replace")))
    behaviour = (config.passthrough or "WHEN_NO_MATCH").upper()
    if behaviour == "NEVER" or (behaviour == "WHEN_NO_TEMPLATES" and templates and request.body):
        raise MockFailure(415, "Unsupported Media Type", "UnsupportedMediaTypeException",
                          f"no mapping template for content type {content_type} (passthroughBehavior {behaviour})")
    return request.body.decode(errors="replace")


def _status_of(body: str) -> int:
    try:
        data = json.loads(body)
    except ValueError:
        raise _internal(UNPARSABLE_STATUS) from None
    status = data.get("statusCode") if isinstance(data, dict) else None
    if not isinstance(status, int) or isinstance(status, bool):
        raise _internal(UNPARSABLE_STATUS)
    return status


def _select(responses: tuple[IntegrationResponse, ...], status: str) -> IntegrationResponse:
    # Which of several matching patterns wins is not documented: the lowest status code, for a stable answer.
    ordered = sorted(responses, key=lambda r: r.status)
    for response in ordered:
        if response.pattern and _full_match(response.pattern, status):
            return response
    default = next((r for r in ordered if not r.pattern), None)
    if default is None:
        raise _internal("Execution failed due to configuration error: No match for output mapping and no default "
                        f"output mapping configured. Endpoint Response Status Code: {status}")
    return default


def _full_match(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False  # AWS refuses such a pattern at PutIntegrationResponse; moto stores it


_HEADER_KEY = "method.response.header."


def _headers(chosen: IntegrationResponse, declared: frozenset[str], request: MockRequest) -> dict[str, str]:
    headers = {}
    for key, source in chosen.parameters.items():
        if not key.startswith(_HEADER_KEY) or key not in declared:
            continue  # AWS refuses a mapping to an undeclared header when it is put; moto does not
        value = _parameter_value(source, request)
        if value is not None:
            headers[key[len(_HEADER_KEY):]] = value
    return headers


def _parameter_value(source: str, request: MockRequest) -> str | None:
    source = source.strip()
    if len(source) >= 2 and source.startswith("'") and source.endswith("'"):
        return source[1:-1]
    if source.startswith("stageVariables."):
        return request.stage_variables.get(source.split(".", 1)[1])
    if source.startswith("context."):
        value = _dig(request.context, source.split(".")[1:])
        return None if value is None else _text(value)
    return None  # integration.response.header/body: a mock has neither


def _dig(data: Any, path: list[str]) -> Any:
    for part in path:
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def _response_template(chosen: IntegrationResponse, accept: str) -> tuple[str, str]:
    templates = {_media_type(k): v or "" for k, v in chosen.templates.items()}
    if not templates:
        return DEFAULT_CONTENT_TYPE, ""
    for wanted in (_media_type(a) for a in accept.split(",")):
        if wanted in templates:
            return wanted, templates[wanted]
    if DEFAULT_CONTENT_TYPE in templates:
        return DEFAULT_CONTENT_TYPE, templates[DEFAULT_CONTENT_TYPE]
    first = next(iter(templates))
    return first, templates[first]


# ---------------------------------------------------------------------------------------- templates


class TemplateError(ValueError):
    """A template the sandbox does not evaluate (see the module docstring)."""


class _Input:
    """`$input` of a mapping template."""

    def __init__(self, request: MockRequest, body: str):
        self.request, self.body = request, body

    def params(self, name: str | None = None) -> Any:
        headers = {k.lower(): v for k, v in self.request.headers.items()}
        if name is None:
            return {"path": dict(self.request.path), "querystring": dict(self.request.querystring),
                    "header": dict(self.request.headers)}
        # API Gateway looks in the path, the query string, then the headers; a missing one is "".
        for source in (self.request.path, self.request.querystring):
            if name in source:
                return source[name]
        return headers.get(name.lower(), "")


def _template_input(request: MockRequest, body: str) -> dict[str, Any]:
    return {"input": _Input(request, body), "context": dict(request.context),
            "stageVariables": dict(request.stage_variables)}


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Ref:
    source: str  # as written, for an undefined reference
    root: str
    steps: tuple[tuple[str, tuple[Any, ...] | None], ...]  # (name, call arguments or None for a property)
    quiet: bool


@dataclass(frozen=True)
class _If:
    branches: tuple[tuple[Any, tuple[Any, ...]], ...]  # (condition or None for #else, body)


_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_STRING = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_DIRECTIVE = re.compile(r"#\{?([A-Za-z]+)\}?")
_SUPPORTED = {"if", "elseif", "else", "end"}


def render(template: str, variables: dict[str, Any]) -> str:
    """Evaluate `template` with `variables` (`input`, `context`, `stageVariables`); TemplateError if outside
    the subset the sandbox models."""
    nodes, pos, stop = _Parser(template).block(0)
    if stop is not None:
        raise TemplateError(f"#{stop} without #if")
    return "".join(_evaluate(node, variables) for node in nodes)


class _Parser:
    def __init__(self, text: str):
        self.text = text

    def block(self, pos: int) -> tuple[tuple[Any, ...], int, str | None]:
        """Nodes from `pos` up to an #elseif/#else/#end (returned as the stop word) or the end."""
        nodes: list[Any] = []
        buffer: list[str] = []
        text = self.text
        while pos < len(text):
            char = text[pos]
            if text.startswith("##", pos):
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end + 1
            elif text.startswith("#*", pos):
                end = text.find("*#", pos + 2)
                pos = len(text) if end < 0 else end + 2
            elif char == "#" and (match := _DIRECTIVE.match(text, pos)):
                name = match.group(1)
                if name not in _SUPPORTED:
                    raise TemplateError(f"the sandbox does not evaluate #{name}")
                if buffer:
                    nodes.append(_Text("".join(buffer)))
                    buffer = []
                if name in ("elseif", "else", "end"):
                    return tuple(nodes), pos, name
                node, pos = self.conditional(match.end())
                nodes.append(node)
            elif char == "$" and (parsed := self.reference(pos)):
                if buffer:
                    nodes.append(_Text("".join(buffer)))
                    buffer = []
                ref, pos = parsed
                nodes.append(ref)
            else:
                buffer.append(char)
                pos += 1
        if buffer:
            nodes.append(_Text("".join(buffer)))
        return tuple(nodes), pos, None

    def conditional(self, pos: int) -> tuple[_If, int]:
        branches: list[tuple[Any, tuple[Any, ...]]] = []
        condition, pos = self.parenthesised(pos)
        while True:
            body, pos, stop = self.block(pos)
            branches.append((condition, body))
            if stop is None:
                raise TemplateError("#if without #end")
            match = _DIRECTIVE.match(self.text, pos)
            assert match is not None
            pos = match.end()
            if stop == "end":
                return _If(tuple(branches)), pos
            if stop == "else":
                condition = None
            else:
                condition, pos = self.parenthesised(pos)

    def parenthesised(self, pos: int) -> tuple[Any, int]:
        while pos < len(self.text) and self.text[pos].isspace():
            pos += 1
        if not self.text.startswith("(", pos):
            raise TemplateError("#if or #elseif without a condition")
        expression, pos = _Expression(self, pos + 1).parse()
        return expression, pos

    def reference(self, pos: int) -> tuple[_Ref, int] | None:
        """A reference at `pos` (a `$`), or None when the `$` is plain text."""
        text = self.text
        start, pos = pos, pos + 1
        quiet = text.startswith("!", pos)
        pos += quiet
        formal = text.startswith("{", pos)
        pos += formal
        match = _IDENT.match(text, pos)
        if match is None:
            return None
        root, pos = match.group(0), match.end()
        steps: list[tuple[str, tuple[Any, ...] | None]] = []
        while True:
            if text.startswith("(", pos) and not steps and root:  # $name(...) is not a reference form
                return None
            if not text.startswith(".", pos):
                break
            member = _IDENT.match(text, pos + 1)
            if member is None:
                break
            name, after = member.group(0), member.end()
            if text.startswith("(", after):
                args, after = self.arguments(after + 1)
                steps.append((name, args))
            else:
                steps.append((name, None))
            pos = after
        if formal:
            if not text.startswith("}", pos):
                return None
            pos += 1
        return _Ref(text[start:pos], root, tuple(steps), quiet), pos

    def arguments(self, pos: int) -> tuple[tuple[Any, ...], int]:
        args: list[Any] = []
        text = self.text
        while True:
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if text.startswith(")", pos):
                return tuple(args), pos + 1
            value, pos = self.literal(pos)
            args.append(value)
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if text.startswith(",", pos):
                pos += 1

    def literal(self, pos: int) -> tuple[Any, int]:
        text = self.text
        if match := _STRING.match(text, pos):
            return (match.group(1) if match.group(1) is not None else match.group(2)), match.end()
        if match := _NUMBER.match(text, pos):
            number = match.group(0)
            return (float(number) if "." in number else int(number)), match.end()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                return value, pos + len(word)
        raise TemplateError(f"the sandbox does not evaluate the argument at {text[pos:pos + 20]!r}")


class _Expression:
    """`a == 'x' && !b || c != 1` up to the closing parenthesis."""

    def __init__(self, parser: _Parser, pos: int):
        self.parser, self.text, self.pos = parser, parser.text, pos

    def parse(self) -> tuple[Any, int]:
        expression = self.disjunction()
        self.space()
        if not self.text.startswith(")", self.pos):
            raise TemplateError(f"the sandbox does not evaluate the condition near {self.text[self.pos:][:20]!r}")
        return expression, self.pos + 1

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def take(self, *tokens: str) -> str | None:
        self.space()
        for token in tokens:
            if self.text.startswith(token, self.pos):
                self.pos += len(token)
                return token
        return None

    def disjunction(self) -> Any:
        left = self.conjunction()
        while self.take("||"):
            left = ("or", left, self.conjunction())
        return left

    def conjunction(self) -> Any:
        left = self.negation()
        while self.take("&&"):
            left = ("and", left, self.negation())
        return left

    def negation(self) -> Any:
        if self.take("!") and not self.text.startswith("=", self.pos):
            return ("not", self.negation())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.operand()
        operator = self.take("==", "!=")
        return (operator, left, self.operand()) if operator else ("truth", left)

    def operand(self) -> Any:
        self.space()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            inner = self.disjunction()
            if not self.take(")"):
                raise TemplateError("unbalanced parentheses in a condition")
            return inner
        if self.text.startswith("$", self.pos):
            parsed = self.parser.reference(self.pos)
            if parsed is None:
                raise TemplateError("a condition with a malformed reference")
            ref, self.pos = parsed
            return ref
        value, self.pos = self.parser.literal(self.pos)
        return ("value", value)


_UNDEFINED = object()


def _resolve(ref: _Ref, variables: dict[str, Any]) -> Any:
    if ref.root == "util":
        raise TemplateError("the sandbox does not evaluate $util")
    if ref.root not in variables:
        return _UNDEFINED
    value = variables[ref.root]
    for name, args in ref.steps:
        value = _step(value, name, args)
        if value is None:
            return None
    return value


def _step(value: Any, name: str, args: tuple[Any, ...] | None) -> Any:
    if isinstance(value, _Input):
        if name == "params" and args is not None and len(args) <= 1:
            return value.params(*[str(a) for a in args])
        if name == "body" and args is None:
            return value.body
        if name in ("json", "path") and args == ("$",):
            return value.body
        raise TemplateError(f"the sandbox does not evaluate $input.{name}")
    if isinstance(value, Mapping):
        if args is None:
            return value.get(name)
        if name == "get" and len(args) == 1:
            return value.get(args[0])
        if name == "size" and not args:
            return len(value)
    if isinstance(value, str) and args is not None and not args:
        simple = {"length": len, "toLowerCase": str.lower, "toUpperCase": str.upper, "trim": str.strip}
        if name in simple:
            return simple[name](value)
    raise TemplateError(f"the sandbox does not evaluate .{name}{'()' if args is not None else ''}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def _evaluate(node: Any, variables: dict[str, Any]) -> str:
    if isinstance(node, _Text):
        return node.text
    if isinstance(node, _Ref):
        value = _resolve(node, variables)
        if value is None or value is _UNDEFINED:
            return "" if node.quiet else node.source
        return _text(value)
    for condition, body in node.branches:
        if condition is None or _holds(condition, variables):
            return "".join(_evaluate(child, variables) for child in body)
    return ""


def _value(operand: Any, variables: dict[str, Any]) -> Any:
    if isinstance(operand, _Ref):
        value = _resolve(operand, variables)
        return None if value is _UNDEFINED else value
    if isinstance(operand, tuple) and operand and operand[0] == "value":
        return operand[1]
    return _holds(operand, variables)


def _holds(condition: Any, variables: dict[str, Any]) -> bool:
    kind = condition[0]
    if kind == "or":
        return _holds(condition[1], variables) or _holds(condition[2], variables)
    if kind == "and":
        return _holds(condition[1], variables) and _holds(condition[2], variables)
    if kind == "not":
        return not _holds(condition[1], variables)
    if kind == "truth":
        value = _value(condition[1], variables)
        return value is not None and value is not False  # Velocity 1.7: an empty string is true
    left, right = _value(condition[1], variables), _value(condition[2], variables)
    equal = left == right if type(left) is type(right) else _text(left) == _text(right)
    return equal if kind == "==" else not equal
