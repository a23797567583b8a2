"""Countdown arithmetic: expression trees, their text, and a parser that never evaluates code.

An expression is a tree of :class:`Expr` nodes over the four operations. Every value
is exact (``fractions.Fraction``), so ``7 / 2 * 2`` is 7 and no rounding can make a
wrong answer right. Model text is read by a small recursive-descent parser over a
fixed token set (integers, ``+ - * /``, parentheses): nothing the model writes is
ever run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

OPS = ("+", "-", "*", "/")
MAX_EXPR_CHARS = 200        # longer answers are refused before parsing
MAX_LITERAL = 10**6         # a literal above this is refused (no huge-number arithmetic)
_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")


class ParseError(ValueError):
    """The answer text is not an arithmetic expression (the message says why)."""


class OutOfRange(ParseError):
    """A literal larger than any answer may use: the expression is well formed, the number is
    not one of the game's (checked by its digits, never converted)."""


@dataclass(frozen=True)
class Expr:
    """A number (``op`` is None, ``value`` the literal) or ``left op right``."""

    value: Fraction
    op: str | None = None
    left: "Expr | None" = None
    right: "Expr | None" = None

    @classmethod
    def number(cls, n: int) -> "Expr":
        return cls(Fraction(n))

    @classmethod
    def combine(cls, left: "Expr", op: str, right: "Expr") -> "Expr":
        """``left op right``; raises ZeroDivisionError for a division by zero."""
        return cls(apply(left.value, op, right.value), op, left, right)

    def literals(self) -> list[int]:
        """The numbers the expression uses, left to right."""
        if self.op is None:
            return [int(self.value)]
        return self.left.literals() + self.right.literals()

    def text(self, top: bool = True) -> str:
        """Fully bracketed text, without brackets around the whole: ``(25 * 4) - 3``."""
        if self.op is None:
            return str(int(self.value))
        inner = f"{self.left.text(False)} {self.op} {self.right.text(False)}"
        return inner if top else f"({inner})"

    def steps(self) -> list[tuple[Fraction, str, Fraction, Fraction]]:
        """The operations in evaluation order: (left value, op, right value, result)."""
        if self.op is None:
            return []
        return self.left.steps() + self.right.steps() + [(self.left.value, self.op, self.right.value, self.value)]


def apply(a: Fraction, op: str, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            raise ZeroDivisionError("division by zero")
        return a / b
    raise ValueError(f"unknown operation {op!r}")


def show(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def parse(text: str) -> Expr:
    """Parse ``text`` (usual precedence, left-associative); raise :class:`ParseError`."""
    if len(text) > MAX_EXPR_CHARS:
        raise ParseError("expression too long")
    tokens, pos = [], 0
    stripped = text.rstrip()
    while pos < len(stripped):
        m = _TOKEN.match(stripped, pos)
        if not m:
            raise ParseError("unexpected character")
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens:
        raise ParseError("empty expression")
    parser = _Parser(tokens)
    expr = parser.expression()
    if parser.i != len(tokens):
        raise ParseError(f"unexpected {tokens[parser.i]!r}")
    return expr


class _Parser:
    """expression := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
    factor := INT | '(' expression ')'."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expression(self) -> Expr:
        node = self.term()
        while self.peek() in ("+", "-"):
            op = self.tokens[self.i]
            self.i += 1
            node = self._combine(node, op, self.term())
        return node

    def term(self) -> Expr:
        node = self.factor()
        while self.peek() in ("*", "/"):
            op = self.tokens[self.i]
            self.i += 1
            node = self._combine(node, op, self.factor())
        return node

    def factor(self) -> Expr:
        tok = self.peek()
        if tok is None:
            raise ParseError("expression ends early")
        self.i += 1
        if tok == "(":
            self.depth += 1
            if self.depth > 20:
                raise ParseError("brackets nested too deeply")
            node = self.expression()
            if self.peek() != ")":
                raise ParseError("missing ')'")
            self.i += 1
            self.depth -= 1
            return node
        if tok.isdigit():
            if len(tok.lstrip("0")) > len(str(MAX_LITERAL)) or int(tok) > MAX_LITERAL:
                raise OutOfRange("number out of range (too large)")
            return Expr.number(int(tok))
        raise ParseError(f"unexpected {tok!r}")   # one of the fixed tokens: a bounded set of reasons

    @staticmethod
    def _combine(left: Expr, op: str, right: Expr) -> Expr:
        try:
            return Expr.combine(left, op, right)
        except ZeroDivisionError:
            raise ParseError("division by zero") from None
