"""Search filters and ``order_by`` clauses, compiled to parameterised SQL.

The text a client sends never reaches SQL as text: a tokenizer and a recursive-descent parser
turn it into a small AST, and a compiler maps each identifier through a per-search declaration
(``SearchKind``) to fixed column names. Every key and value the user wrote travels as a ``?``
parameter; the SQL text is assembled only from whitelisted names and operators.

Grammar (MLflow's, plus ``OR`` and parentheses; AND binds tighter than OR)::

    filter     := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := term ("AND" term)*
    term       := "(" or_expr ")" | comparison
    comparison := ident comparator [value | list]
    ident      := part ("." part)*          part: bare word, `backticked` or "double-quoted"
    comparator := = != > >= < <= | LIKE | ILIKE | IN | NOT IN | IS NULL | IS NOT NULL
    value      := 'string' | "string" | number
    list       := "(" string ("," string)* [","] ")"

In quoted strings and identifiers the quote character is escaped by doubling it or with a
backslash, and ``\\\\`` is one backslash; any other backslash is kept (so LIKE patterns such
as ``'a\\_b'`` pass through). Positions in error messages are 0-based character offsets.

To support another search (registered models, model versions), declare a ``SearchKind``:
its attribute columns, its key/value child tables and its entity prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labtrack.wire import MlflowError, invalid

__all__ = [
    "Sql",
    "run_filter",
    "run_order",
    "experiment_filter",
    "experiment_order",
    "registered_model_filter",
    "registered_model_order",
    "model_version_filter",
    "model_version_order",
    "logged_model_filter",
    "parse_filter",
]


@dataclass(frozen=True)
class Sql:
    """A SQL fragment using only ``?`` placeholders, with its parameters in order."""

    sql: str
    params: tuple = ()
    # An ORDER BY term over a child table's value needs that table joined into the FROM list:
    # one LEFT JOIN the planner can hash or merge, instead of a lookup per candidate row.
    join: Sql | None = None
    # An ORDER BY term that ranks rows by presence (values, then NaN, then none) carries the
    # condition of its first rank: a page inside that rank can be asked for with the condition
    # in WHERE and the rank dropped from ORDER BY, which an index on the value can answer in
    # order, stopping after the page (see runs.search).
    first_rank: str | None = None


# Guards that keep pathological input a clean 400: Python recursion and SQLite's
# expression-depth limit (1000) would otherwise fail with a 500.
MAX_NESTING = 50
MAX_COMPARISONS = 300
MAX_LIST_VALUES = 10_000  # all IN lists together; SQLite allows 32 766 parameters
_SHOWN = 200  # longest filter text quoted back in an error message

# ----------------------------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class Token:
    kind: str  # NAME BACKTICK DQUOTE STRING NUMBER OP LPAREN RPAREN COMMA DOT END
    text: str  # as written
    value: str  # unescaped content for quoted tokens, otherwise the text
    pos: int

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def shown(self) -> str:
        return "end of input" if self.kind == "END" else f"'{self.text}'"


_NUMBER = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[^\W\d]\w*")
_KEY_PART = re.compile(r"\w+")  # after a dot a key part may start with a digit: metrics.1x
_OPERATORS = ("!=", "<>", "==", ">=", "<=", "=", "<", ">")
_QUOTES = {"'": "STRING", '"': "DQUOTE", "`": "BACKTICK"}
_PUNCT = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA"}
_IDENT_KINDS = ("NAME", "BACKTICK", "DQUOTE")


def _show(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _syntax_error(what: str, text: str, message: str, pos: int) -> MlflowError:
    return invalid(f"Invalid {what} '{_show(text)}': {message} at position {pos}.")


def _read_quoted(text: str, start: int, what: str) -> tuple[str, int]:
    """Read the quoted token at ``start``; return its unescaped content and the end offset."""
    quote, out, i, n = text[start], [], start + 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in (quote, "\\"):
            out.append(text[i + 1])
            i += 2
        elif c == quote and i + 1 < n and text[i + 1] == quote:
            out.append(quote)
            i += 2
        elif c == quote:
            return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise _syntax_error(what, text, f"unterminated {quote}-quoted text", start)


def tokenize(text: str, what: str = "filter") -> list[Token]:
    """Split ``text`` into tokens; keywords stay NAME tokens and are matched by the parser."""
    if "\x00" in text:
        raise _syntax_error(what, text.replace("\x00", "\\0"), "NUL character", text.index("\x00"))
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        prev = tokens[-1] if tokens else None
        touching = prev is not None and prev.end == i
        if c == "." and touching and prev.kind in _IDENT_KINDS:
            tokens.append(Token("DOT", ".", ".", i))
            i += 1
            continue
        if touching and prev.kind == "DOT" and (m := _KEY_PART.match(text, i)):
            tokens.append(Token("NAME", m.group(), m.group(), i))
            i = m.end()
            continue
        if c in _QUOTES:
            value, end = _read_quoted(text, i, what)
            tokens.append(Token(_QUOTES[c], text[i:end], value, i))
            i = end
            continue
        if c in _PUNCT:
            tokens.append(Token(_PUNCT[c], c, c, i))
            i += 1
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
        if op:
            tokens.append(Token("OP", op, op, i))
            i += len(op)
            continue
        for kind, pattern in (("NUMBER", _NUMBER), ("NAME", _NAME)):
            if m := pattern.match(text, i):
                tokens.append(Token(kind, m.group(), m.group(), i))
                i = m.end()
                break
        else:
            raise _syntax_error(what, text, f"unexpected character '{c}'", i)
    tokens.append(Token("END", "", "", n))
    return tokens


# ----------------------------------------------------------------------------------------------
# AST and parser


@dataclass(frozen=True)
class Ident:
    prefix: str | None  # entity prefix as written ("metrics", "tag", ...), None when bare
    key: str
    text: str  # as written, for messages
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # "string" | "number"
    value: str  # unescaped string, or the number's text
    text: str
    pos: int


@dataclass(frozen=True)
class Comparison:
    ident: Ident
    op: str  # upper case: "=", "NOT IN", "IS NULL", ... (unknown ones are rejected later)
    op_pos: int
    value: Literal | tuple[Literal, ...] | None  # tuple for IN / NOT IN, None for IS [NOT] NULL


@dataclass(frozen=True)
class BoolOp:
    op: str  # "AND" | "OR"
    items: tuple[Node, ...]


Node = Comparison | BoolOp


class _Parser:
    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        self.tokens = tokenize(text, what)
        self.i = 0
        self.comparisons = 0
        self.list_values = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "END":
            self.i += 1
        return tok

    def error(self, message: str, tok: Token) -> MlflowError:
        return _syntax_error(self.what, self.text, message, tok.pos)

    @staticmethod
    def is_word(tok: Token, *words: str) -> bool:
        return tok.kind == "NAME" and tok.text.upper() in words

    def parse_filter(self) -> Node:
        node = self.parse_or(0)
        tok = self.peek()
        if tok.kind == "RPAREN":
            raise self.error("unbalanced ')'", tok)
        if tok.kind != "END":
            raise self.error(f"expected AND, OR or the end of the filter, found {tok.shown()}", tok)
        return node

    def parse_or(self, depth: int) -> Node:
        items = [self.parse_and(depth)]
        while self.is_word(self.peek(), "OR"):
            self.take()
            items.append(self.parse_and(depth))
        return items[0] if len(items) == 1 else BoolOp("OR", tuple(items))

    def parse_and(self, depth: int) -> Node:
        items = [self.parse_term(depth)]
        while self.is_word(self.peek(), "AND"):
            self.take()
            items.append(self.parse_term(depth))
        return items[0] if len(items) == 1 else BoolOp("AND", tuple(items))

    def parse_term(self, depth: int) -> Node:
        tok = self.peek()
        if tok.kind != "LPAREN":
            return self.parse_comparison()
        if depth >= MAX_NESTING:
            raise self.error(f"parentheses nested deeper than {MAX_NESTING}", tok)
        self.take()
        node = self.parse_or(depth + 1)
        close = self.take()
        if close.kind != "RPAREN":
            raise self.error(
                f"missing ')' for the '(' opened at position {tok.pos}, found {close.shown()}",
                close,
            )
        return node

    def parse_comparison(self) -> Comparison:
        ident = self.parse_ident()
        op_tok = self.peek()
        op = self.parse_comparator(ident)
        value: Literal | tuple[Literal, ...] | None = None
        if op in ("IN", "NOT IN"):
            value = self.parse_list(op)
        elif op not in ("IS NULL", "IS NOT NULL"):
            value = self.parse_value()
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.error(f"more than {MAX_COMPARISONS} comparisons", _ident_token(ident))
        return Comparison(ident, op, op_tok.pos, value)

    def parse_ident(self) -> Ident:
        first = self.take()
        if first.kind not in _IDENT_KINDS or self.is_word(first, "AND", "OR"):
            raise self.error(
                "expected a comparison such as metrics.<key> > 0, params.<key> = 'v', "
                f"tags.<key> = 'v' or <attribute> = 'v', found {first.shown()}",
                first,
            )
        parts = [first]
        while self.peek().kind == "DOT":
            self.take()
            part = self.take()
            if part.kind not in _IDENT_KINDS:
                raise self.error(f"expected a key after '.', found {part.shown()}", part)
            parts.append(part)
        text = self.text[first.pos : parts[-1].end]
        if len(parts) == 1:
            return Ident(None, first.value, text, first.pos)
        rest = parts[1:]
        if len(rest) > 1 and any(p.kind != "NAME" for p in rest):
            quoted = next(p for p in rest if p.kind != "NAME")
            raise self.error("a quoted key must be the whole key, as in tags.`a.b`", quoted)
        return Ident(first.value, ".".join(p.value for p in rest), text, first.pos)

    def parse_comparator(self, ident: Ident) -> str:
        tok = self.take()
        if tok.kind == "OP":
            return tok.text
        word = tok.text.upper() if tok.kind == "NAME" else ""
        if word in ("LIKE", "ILIKE", "IN"):
            return word
        if word == "NOT":
            nxt = self.take()
            if self.is_word(nxt, "LIKE", "ILIKE", "IN"):
                return "NOT " + nxt.text.upper()
            raise self.error(f"expected IN, LIKE or ILIKE after NOT, found {nxt.shown()}", nxt)
        if word == "IS":
            nxt = self.take()
            if self.is_word(nxt, "NULL"):
                return "IS NULL"
            last = self.take()
            if self.is_word(nxt, "NOT") and self.is_word(last, "NULL"):
                return "IS NOT NULL"
            raise self.error("expected IS NULL or IS NOT NULL", tok)
        raise self.error(
            f"expected a comparator (=, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN, IS NULL, "
            f"IS NOT NULL) after '{ident.text}', found {tok.shown()}",
            tok,
        )

    def parse_value(self) -> Literal:
        tok = self.take()
        if tok.kind in ("STRING", "DQUOTE"):
            return Literal("string", tok.value, tok.text, tok.pos)
        if tok.kind == "NUMBER":
            return Literal("number", tok.text, tok.text, tok.pos)
        if tok.kind == "LPAREN":
            raise self.error("a parenthesised list is only allowed after IN or NOT IN", tok)
        if tok.kind in ("NAME", "BACKTICK"):
            raise self.error(f"value {tok.shown()} is not quoted; quote strings with ' or \"", tok)
        raise self.error(
            f"expected a value (a quoted string or a number), found {tok.shown()}", tok
        )

    def parse_list(self, op: str) -> tuple[Literal, ...]:
        tok = self.take()
        if tok.kind != "LPAREN":
            raise self.error(f"expected a parenthesised list of strings after {op}", tok)
        if self.peek().kind == "RPAREN":
            raise self.error(f"expected a non-empty list after {op}", self.peek())
        items: list[Literal] = []
        while True:
            item = self.take()
            if item.kind not in ("STRING", "DQUOTE"):
                raise self.error(
                    f"expected a quoted string in the list, found {item.shown()}", item
                )
            items.append(Literal("string", item.value, item.text, item.pos))
            self.list_values += 1
            if self.list_values > MAX_LIST_VALUES:
                raise self.error(f"more than {MAX_LIST_VALUES} values in IN lists", item)
            sep = self.take()
            if sep.kind == "RPAREN":
                return tuple(items)
            if sep.kind != "COMMA":
                raise self.error(f"expected ',' or ')' in the list, found {sep.shown()}", sep)
            if self.peek().kind == "RPAREN":  # trailing comma, as MLflow allows
                self.take()
                return tuple(items)


def _ident_token(ident: Ident) -> Token:
    return Token("NAME", ident.text, ident.text, ident.pos)


def parse_filter(text: str) -> Node | None:
    """Parse a filter into an AST; ``None`` for an empty or blank filter."""
    if not text or not text.strip():
        return None
    return _Parser(text, "filter").parse_filter()


def parse_order(clause: str) -> tuple[Ident, bool]:
    """Parse one ``order_by`` item into (identifier, ascending)."""
    parser = _Parser(clause, "order_by clause")
    if parser.peek().kind == "END":
        raise invalid(f"Invalid order_by clause '{clause}'. Could not be parsed.")
    ident = parser.parse_ident()
    tok, ascending = parser.take(), True
    if tok.kind == "NAME":
        if tok.text.upper() not in ("ASC", "DESC"):
            raise invalid(
                f"Invalid ordering key in order_by clause '{_show(clause)}'. Expected ASC or "
                f"DESC after '{ident.text}', found '{tok.text}' at position {tok.pos}."
            )
        ascending = tok.text.upper() == "ASC"
        tok = parser.take()
    if tok.kind != "END":
        raise parser.error(f"expected ASC, DESC or the end of the clause, found {tok.shown()}", tok)
    return ident, ascending


# ----------------------------------------------------------------------------------------------
# Declarations: what each search can filter and order on


EQ = frozenset({"=", "!="})
STRING_OPS = EQ | {"LIKE", "ILIKE"}
NUMERIC_OPS = EQ | {">", ">=", "<", "<="}
LIST_OPS = frozenset({"IN", "NOT IN"})
NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})


@dataclass(frozen=True)
class Attr:
    """A column of the searched row itself."""

    column: str
    # "string" | "number" (int or float) | "integer" | "int_string" (quoted integer)
    # | "version" (an integer, quoted or not)
    type: str
    ops: frozenset[str]
    nullable: bool = False
    orderable: bool = True


@dataclass(frozen=True)
class KeyValue:
    """A key/value child table (params, tags, latest metrics) correlated to the searched row."""

    label: str  # how messages name it: "metric", "parameter", "tag"
    table: str
    alias: str
    link: str  # correlation with the outer alias, e.g. "p.run_pk = r.run_pk"
    ops: frozenset[str]
    numeric: bool = False  # values are doubles with an is_nan flag (latest_metrics)
    orderable: bool = True


@dataclass(frozen=True)
class Related:
    """A value in related rows: a comparison holds when some related row satisfies it."""

    source: str  # "FROM ... WHERE <correlation>"; may hold fixed '?' placeholders
    column: str
    ops: frozenset[str]
    params: tuple = ()  # values for the placeholders in ``source``


@dataclass(frozen=True)
class SearchKind:
    prefixes: dict[str, str]  # entity prefix as written -> group
    attributes: dict[str, Attr]
    keyed: dict[str, KeyValue]  # group -> child table
    related: dict[str, dict[str, Related]]  # group -> key -> related value ("dataset")
    entity_names: tuple[str, ...]  # listed in "Invalid entity type" messages


def _nullable_groups(kind: SearchKind) -> str:
    return " and ".join(f"{t.label}s" for t in kind.keyed.values() if NULL_OPS <= t.ops)


_CREATED = Attr("r.start_time", "number", NUMERIC_OPS)

RUNS = SearchKind(
    prefixes={
        **dict.fromkeys(("metric", "metrics"), "metric"),
        **dict.fromkeys(("parameter", "parameters", "param", "params"), "parameter"),
        **dict.fromkeys(("tag", "tags"), "tag"),
        **dict.fromkeys(("attribute", "attributes", "attr", "run"), "attribute"),
        **dict.fromkeys(("dataset", "datasets"), "dataset"),
    },
    attributes={
        "run_id": Attr("r.run_uuid", "string", STRING_OPS | LIST_OPS),
        "run_name": Attr("r.name", "string", STRING_OPS),
        **dict.fromkeys(
            ("run name", "Run name", "Run Name"),
            Attr("r.name", "string", STRING_OPS, orderable=False),  # filter-only spellings
        ),
        "status": Attr("r.status", "string", STRING_OPS),
        "user_id": Attr("r.user_id", "string", STRING_OPS),
        "artifact_uri": Attr("r.artifact_uri", "string", STRING_OPS),
        "start_time": _CREATED,
        "created": _CREATED,
        "Created": _CREATED,
        "end_time": Attr("r.end_time", "number", NUMERIC_OPS, nullable=True),
    },
    keyed={
        "metric": KeyValue(
            "metric", "latest_metrics", "m", "m.run_pk = r.run_pk", NUMERIC_OPS, numeric=True
        ),
        "parameter": KeyValue(
            "parameter", "params", "p", "p.run_pk = r.run_pk", STRING_OPS | NULL_OPS
        ),
        "tag": KeyValue("tag", "run_tags", "t", "t.run_pk = r.run_pk", STRING_OPS | NULL_OPS),
    },
    related={
        "dataset": {
            key: Related(
                "FROM run_inputs ri JOIN datasets d ON d.dataset_pk = ri.dataset_pk "
                "WHERE ri.run_pk = r.run_pk",
                f"d.{key}",
                STRING_OPS | LIST_OPS,
            )
            for key in ("name", "digest")
        }
        | {
            "context": Related(
                "FROM input_tags it WHERE it.run_pk = r.run_pk AND it.key = ?",
                "it.value",
                STRING_OPS | LIST_OPS,
                ("mlflow.data.context",),
            )
        }
    },
    entity_names=("metric", "parameter", "tag", "attribute", "dataset"),
)

EXPERIMENTS = SearchKind(
    prefixes={"attribute": "attribute", "tag": "tag", "tags": "tag"},
    attributes={
        "name": Attr("e.name", "string", STRING_OPS),
        "experiment_id": Attr("e.experiment_id", "int_string", EQ | LIST_OPS),
        "creation_time": Attr("e.creation_time", "integer", NUMERIC_OPS),
        "last_update_time": Attr("e.last_update_time", "integer", NUMERIC_OPS),
    },
    keyed={
        "tag": KeyValue(
            "tag",
            "experiment_tags",
            "t",
            "t.experiment_id = e.experiment_id",
            STRING_OPS | NULL_OPS,
            orderable=False,
        )
    },
    related={},
    entity_names=("attribute", "tag", "tags"),
)

# Model registry (registered models alias ``rm``, model versions alias ``mv``) and MLflow 3
# logged models (alias ``lm``). Registry tags are filter-only, as in MLflow.
_RM_LAST_UPDATED = Attr("rm.last_updated_timestamp", "integer", NUMERIC_OPS)

REGISTERED_MODELS = SearchKind(
    prefixes={"attribute": "attribute", "tag": "tag", "tags": "tag"},
    attributes={
        "name": Attr("rm.name", "string", STRING_OPS | LIST_OPS),
        "creation_timestamp": Attr("rm.creation_timestamp", "integer", NUMERIC_OPS),
        "last_updated_timestamp": _RM_LAST_UPDATED,
        "timestamp": _RM_LAST_UPDATED,
    },
    keyed={
        "tag": KeyValue(
            "tag",
            "registered_model_tags",
            "t",
            "t.name = rm.name",
            STRING_OPS | NULL_OPS,
            orderable=False,
        )
    },
    related={},
    entity_names=("attribute", "tag", "tags"),
)

MODEL_VERSIONS = SearchKind(
    prefixes={"attribute": "attribute", "tag": "tag", "tags": "tag"},
    attributes={
        "name": Attr("mv.name", "string", STRING_OPS | LIST_OPS),
        "run_id": Attr("mv.run_id", "string", STRING_OPS | LIST_OPS, orderable=False),
        "source_path": Attr("mv.source", "string", STRING_OPS, orderable=False),
        "version_number": Attr("mv.version", "version", NUMERIC_OPS),
        "creation_timestamp": Attr("mv.creation_timestamp", "integer", NUMERIC_OPS),
        "last_updated_timestamp": Attr("mv.last_updated_timestamp", "integer", NUMERIC_OPS),
    },
    keyed={
        "tag": KeyValue(
            "tag",
            "model_version_tags",
            "t",
            "t.name = mv.name AND t.version = mv.version",
            STRING_OPS | NULL_OPS,
            orderable=False,
        )
    },
    related={},
    entity_names=("attribute", "tag", "tags"),
)

_LM_CREATED = Attr("lm.creation_timestamp_ms", "integer", NUMERIC_OPS)
_LM_UPDATED = Attr("lm.last_updated_timestamp_ms", "integer", NUMERIC_OPS)
_LM_STRING = STRING_OPS | LIST_OPS

LOGGED_MODELS = SearchKind(
    prefixes={
        **dict.fromkeys(("attribute", "attributes"), "attribute"),
        **dict.fromkeys(("metric", "metrics"), "metric"),
        **dict.fromkeys(("param", "params"), "parameter"),
        **dict.fromkeys(("tag", "tags"), "tag"),
    },
    attributes={
        "name": Attr("lm.name", "string", _LM_STRING),
        "model_id": Attr("lm.model_id", "string", _LM_STRING),
        "model_type": Attr("lm.model_type", "string", _LM_STRING),
        "status": Attr("lm.status", "string", _LM_STRING),
        "source_run_id": Attr("lm.source_run_id", "string", _LM_STRING),
        "experiment_id": Attr("lm.experiment_id", "int_string", EQ | LIST_OPS),
        **dict.fromkeys(
            ("creation_timestamp", "creation_time", "creation_timestamp_ms"), _LM_CREATED
        ),
        **dict.fromkeys(
            ("last_updated_timestamp", "last_updated_time", "last_updated_timestamp_ms"),
            _LM_UPDATED,
        ),
    },
    keyed={
        "metric": KeyValue(
            "metric",
            "logged_model_metrics",
            "m",
            "m.model_id = lm.model_id",
            NUMERIC_OPS,
            numeric=True,
            orderable=False,
        ),
        "parameter": KeyValue(
            "parameter",
            "logged_model_params",
            "p",
            "p.model_id = lm.model_id",
            _LM_STRING | NULL_OPS,
            orderable=False,
        ),
        "tag": KeyValue(
            "tag",
            "logged_model_tags",
            "t",
            "t.model_id = lm.model_id",
            _LM_STRING | NULL_OPS,
            orderable=False,
        ),
    },
    related={},
    entity_names=("attributes", "metrics", "params", "tags"),
)

# ----------------------------------------------------------------------------------------------
# Dialects: only the comparisons that differ are listed; "{col}" is a whitelisted column.

DIALECTS: dict[str, dict[str, str]] = {
    "sqlite": {"ILIKE": "lower({col}) LIKE lower(?)"},
    "postgresql": {"ILIKE": "{col} ILIKE ?"},
}


def _dialect(name: str) -> dict[str, str]:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unsupported SQL dialect {name!r}") from None


def _condition(dialect: dict[str, str], col: str, op: str, values: tuple) -> Sql:
    """``col <op> ?`` (or an IN list) for a comparator already checked against a whitelist."""
    if op in LIST_OPS:
        marks = ", ".join("?" * len(values))
        template = dialect.get(op) or f"{{col}} {op} ({{marks}})"
        return Sql(template.format(col=col, marks=marks), values)
    return Sql((dialect.get(op) or f"{{col}} {op} ?").format(col=col), values)


# ----------------------------------------------------------------------------------------------
# Compiler


_INT64 = range(-(2**63), 2**63)


def _number(text: str) -> int | float:
    """Parse a number literal; integers outside BIGINT become floats so they still compare."""
    if re.fullmatch(r"-?[0-9]+", text):
        try:
            value = int(text)
        except ValueError:  # more digits than int() accepts
            return float(text)
        return value if value in _INT64 else float(text)
    return float(text)


def _at(pos: int) -> str:
    return f" (at position {pos})"


def _resolve(kind: SearchKind, ident: Ident, attributes: set[str] | dict) -> str:
    """Map an identifier's prefix to its group; reject unknown entities and attribute keys."""
    group = "attribute" if ident.prefix is None else kind.prefixes.get(ident.prefix)
    if group is None:
        raise invalid(
            f"Invalid entity type '{ident.prefix}'. Valid values are "
            f"{list(kind.entity_names)}{_at(ident.pos)}"
        )
    if group == "attribute" and ident.key not in attributes:
        raise invalid(
            f"Invalid attribute key '{ident.key}' specified. Valid keys are "
            f"{sorted(attributes)}{_at(ident.pos)}"
        )
    if group in kind.related and ident.key not in kind.related[group]:
        raise invalid(
            f"Invalid {group} key '{ident.key}' specified. Valid keys are "
            f"{sorted(kind.related[group])}{_at(ident.pos)}"
        )
    return group


def _check_op(c: Comparison, ops: frozenset[str], subject: str, kind: SearchKind) -> None:
    if c.op in NULL_OPS and c.op not in ops:
        raise invalid(
            f"IS NULL / IS NOT NULL is only supported for {_nullable_groups(kind)}, "
            f"not for {subject}{_at(c.op_pos)}"
        )
    if c.op in LIST_OPS and c.op not in ops:
        listable = sorted(k for k, a in kind.attributes.items() if LIST_OPS <= a.ops)
        raise invalid(
            f"Only {listable} attributes support comparison with a list of quoted string "
            f"values, not {subject}{_at(c.op_pos)}"
        )
    if c.op not in ops:
        valid = ", ".join(sorted(ops - NULL_OPS - LIST_OPS) + sorted(ops & (NULL_OPS | LIST_OPS)))
        raise invalid(
            f"Invalid comparator '{c.op}' for {subject}{_at(c.op_pos)}; valid comparators are: "
            f"{valid}"
        )


def _values(c: Comparison, type_: str, subject: str) -> tuple:
    """Check and convert the comparison's literal(s) for a column of ``type_``."""
    literals = c.value if isinstance(c.value, tuple) else (c.value,)
    out = []
    for lit in literals:
        assert lit is not None
        if type_ == "version" and lit.kind == "string":  # version_number = '3' (MLflow accepts)
            lit = Literal("number", lit.value.strip(), lit.text, lit.pos)
            if not re.fullmatch(r"-?[0-9]+", lit.value):
                raise invalid(f"Invalid value for {subject}: '{lit.value}'{_at(lit.pos)}")
        if type_ in ("number", "integer", "double", "version"):
            if lit.kind != "number":
                raise invalid(
                    f"Expected numeric value type for {subject}. Found {lit.text}{_at(lit.pos)}"
                )
            value = float(lit.value) if type_ == "double" else _number(lit.value)
            if type_ in ("integer", "version") and isinstance(value, float):
                raise invalid(f"Invalid value for {subject}: '{lit.value}'{_at(lit.pos)}")
        elif lit.kind != "string":
            raise invalid(
                f"Expected a quoted string value for {subject} (e.g. 'my-value'). "
                f"Got value {lit.text}{_at(lit.pos)}"
            )
        elif type_ == "int_string":
            if not re.fullmatch(r"-?[0-9]{1,18}", lit.value.strip()):
                raise invalid(
                    f"Invalid value '{lit.value}' for {subject}: it must be a valid integer"
                    f"{_at(lit.pos)}"
                )
            value = int(lit.value)
        else:
            value = lit.value
        out.append(value)
    return tuple(out)


def _compile_comparison(kind: SearchKind, c: Comparison, dialect: dict[str, str]) -> Sql:
    group = _resolve(kind, c.ident, kind.attributes)
    key = c.ident.key
    if group == "attribute":
        attr = kind.attributes[key]
        subject = f"attribute '{key}'"
        _check_op(c, attr.ops, subject, kind)
        return _condition(dialect, attr.column, c.op, _values(c, attr.type, subject))
    if group in kind.related:
        rel = kind.related[group][key]
        subject = f"{group} '{key}'"
        _check_op(c, rel.ops, subject, kind)
        cond = _condition(dialect, rel.column, c.op, _values(c, "string", subject))
        return Sql(f"EXISTS (SELECT 1 {rel.source} AND {cond.sql})", rel.params + cond.params)
    table = kind.keyed[group]
    subject = f"{table.label} '{key}'"
    _check_op(c, table.ops, subject, kind)
    a = table.alias
    # Table, alias and link come from the declarations above; key and value are parameters.
    exists = f"EXISTS (SELECT 1 FROM {table.table} {a} WHERE {table.link} AND {a}.key = ?"
    if c.op == "IS NULL":
        return Sql(f"NOT {exists})", (key,))
    if c.op == "IS NOT NULL":
        return Sql(f"{exists})", (key,))
    if table.numeric:
        (value,) = _values(c, "double", subject)
        # NaN is stored as 0 with is_nan = 1: it satisfies only "!=", as in MLflow.
        if c.op == "!=":
            return Sql(f"{exists} AND ({a}.value != ? OR {a}.is_nan = 1))", (key, value))
        return Sql(f"{exists} AND {a}.is_nan = 0 AND {a}.value {c.op} ?)", (key, value))
    cond = _condition(dialect, f"{a}.value", c.op, _values(c, "string", subject))
    return Sql(f"{exists} AND {cond.sql})", (key, *cond.params))


def _compile(kind: SearchKind, node: Node, dialect: dict[str, str]) -> Sql:
    if isinstance(node, Comparison):
        return _compile_comparison(kind, node, dialect)
    parts = [_compile(kind, item, dialect) for item in node.items]
    return Sql(
        "(" + f" {node.op} ".join(p.sql for p in parts) + ")",
        tuple(v for p in parts for v in p.params),
    )


def _filter(kind: SearchKind, filter_string: str | None, dialect: str) -> Sql | None:
    d = _dialect(dialect)
    node = parse_filter(filter_string or "")
    return None if node is None else _compile(kind, node, d)


def _order(kind: SearchKind, order_by: list[str] | None, dialect: str) -> list[Sql]:
    _dialect(dialect)  # ordering SQL is portable today; validate the name all the same
    terms: list[Sql] = []
    seen: set[tuple[str, str]] = set()
    for clause in order_by or []:
        ident, ascending = parse_order(clause)
        orderable = {k for k, a in kind.attributes.items() if a.orderable}
        group = _resolve(kind, ident, orderable)
        direction = "ASC" if ascending else "DESC"
        if group == "attribute":
            attr = kind.attributes[ident.key]
            identity = (group, attr.column)
            if attr.nullable:  # missing values last in both directions, as MLflow sorts
                terms.append(
                    Sql(f"({attr.column} IS NULL) ASC", first_rank=f"{attr.column} IS NOT NULL")
                )
            terms.append(Sql(f"{attr.column} {direction}"))
        elif group in kind.keyed and kind.keyed[group].orderable:
            table = kind.keyed[group]
            identity = (group, ident.key)
            # The child alias ("m") numbered per term ("o_m0", "o_m1"): one join per order key.
            a = f"o_{table.alias}{len(terms)}"
            link = re.sub(rf"\b{table.alias}\.", f"{a}.", table.link)
            join = Sql(f"LEFT JOIN {table.table} {a} ON {link} AND {a}.key = ?", (ident.key,))
            if table.numeric:  # values, then NaN, then runs without the metric
                rank = Sql(f"COALESCE({a}.is_nan, 2) ASC", join=join, first_rank=f"{a}.is_nan = 0")
            else:
                rank = Sql(
                    f"({a}.value IS NULL) ASC", join=join, first_rank=f"{a}.value IS NOT NULL"
                )
            terms.append(rank)
            terms.append(Sql(f"{a}.value {direction}"))
        else:
            raise invalid(f"Invalid order_by entity type '{group}' in clause '{_show(clause)}'")
        if identity in seen:
            raise invalid(f"`order_by` contains duplicate fields: {order_by}")
        seen.add(identity)
    return terms


def run_filter(filter_string: str | None, dialect: str) -> Sql | None:
    """Boolean SQL over the runs alias ``r``; ``None`` when the filter is empty or blank."""
    return _filter(RUNS, filter_string, dialect)


def run_order(order_by: list[str] | None, dialect: str) -> list[Sql]:
    """ORDER BY terms for runs; the caller appends its tie-breakers after them, and adds each
    term's ``join`` to its FROM list (ordering by a metric, param or tag reads a joined row)."""
    return _order(RUNS, order_by, dialect)


def experiment_filter(filter_string: str | None, dialect: str) -> Sql | None:
    """Boolean SQL over the experiments alias ``e``; ``None`` when the filter is empty."""
    return _filter(EXPERIMENTS, filter_string, dialect)


def experiment_order(order_by: list[str] | None, dialect: str) -> list[Sql]:
    """ORDER BY terms for experiments; the caller appends its tie-breakers after them."""
    return _order(EXPERIMENTS, order_by, dialect)


def _filter_text_or_node(kind: SearchKind, given: str | Node | None, dialect: str) -> Sql | None:
    """Compile filter text, or an AST from parse_filter that the caller has rewritten."""
    if given is None or isinstance(given, str):
        return _filter(kind, given, dialect)
    return _compile(kind, given, _dialect(dialect))


def registered_model_filter(filter_string: str | Node | None, dialect: str) -> Sql | None:
    """Boolean SQL over the registered models alias ``rm``; ``None`` when the filter is empty."""
    return _filter_text_or_node(REGISTERED_MODELS, filter_string, dialect)


def registered_model_order(order_by: list[str] | None, dialect: str) -> list[Sql]:
    """ORDER BY terms for registered models; the caller appends ``rm.name`` when absent."""
    return _order(REGISTERED_MODELS, order_by, dialect)


def model_version_filter(filter_string: str | Node | None, dialect: str) -> Sql | None:
    """Boolean SQL over the model versions alias ``mv``; ``None`` when the filter is empty."""
    return _filter_text_or_node(MODEL_VERSIONS, filter_string, dialect)


def model_version_order(order_by: list[str] | None, dialect: str) -> list[Sql]:
    """ORDER BY terms for model versions; the caller appends its tie-breakers after them."""
    return _order(MODEL_VERSIONS, order_by, dialect)


def logged_model_filter(filter_string: str | None, dialect: str) -> Sql | None:
    """Boolean SQL over the logged models alias ``lm``; ``None`` when the filter is empty.

    Ordering of logged models is structured (``field_name``/``ascending``), not text, so it is
    compiled by the logged-model store from ``LOGGED_MODELS.attributes``.
    """
    return _filter(LOGGED_MODELS, filter_string, dialect)
