"""The arithmetic grammar S -> S+S | S-S | S*S | S/S | (S) | x | y: a sampler of bounded length and a parser.

The grammar is ambiguous, but its language is that of the unambiguous one the parser reads::

    expr := term (op term)*        op   := + | - | * | /
    term := x | y | ( expr )

so a string parses if and only if some derivation of S yields it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TERMINALS = ("x", "y")
OPERATORS = ("+", "-", "*", "/")
SYMBOLS = (*TERMINALS, *OPERATORS, "(", ")")


class ParseError(ValueError):
    """A string outside the grammar's language; ``position`` is where the parser stopped."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


@dataclass(frozen=True)
class Node:
    """A parse tree: a leaf (``x``/``y``), a binary operation, or a parenthesised expression."""

    op: str  # "x", "y", one of OPERATORS, or "()"
    children: tuple[Node, ...] = ()

    def __str__(self) -> str:
        if self.op == "()":
            return f"({self.children[0]})"
        if self.children:
            return f"{self.children[0]}{self.op}{self.children[1]}"
        return self.op


def parse(s: str) -> Node:
    """The parse tree of ``s`` (operators left-associative); :class:`ParseError` if ``s`` is not in the language."""
    pos = 0

    def expr() -> Node:
        nonlocal pos
        node = term()
        while pos < len(s) and s[pos] in OPERATORS:
            op = s[pos]
            pos += 1
            node = Node(op, (node, term()))
        return node

    def term() -> Node:
        nonlocal pos
        if pos >= len(s):
            raise ParseError("expected x, y or '(' but the string ended", pos)
        c = s[pos]
        if c in TERMINALS:
            pos += 1
            return Node(c)
        if c == "(":
            pos += 1
            inner = expr()
            if pos >= len(s) or s[pos] != ")":
                raise ParseError("expected ')'", pos)
            pos += 1
            return Node("()", (inner,))
        raise ParseError(f"expected x, y or '(' but found {c!r}", pos)

    tree = expr()
    if pos != len(s):
        raise ParseError(f"unexpected {s[pos]!r}", pos)
    return tree


def is_valid(s: str) -> bool:
    """Whether ``s`` is derivable from S."""
    try:
        parse(s)
    except ParseError:
        return False
    return True


def sample(rng: random.Random, max_len: int, depth: int = 0) -> str:
    """One random derivation of S no longer than ``max_len`` symbols.

    A leaf is chosen with probability rising with depth, so most strings are several operations long; a
    derivation over ``max_len`` is redrawn (rejection keeps the distribution a conditioned derivation one).
    """
    while True:
        s = _derive(rng, depth, max_len)
        if s is not None:
            return s


def _derive(rng: random.Random, depth: int, budget: int) -> str | None:
    if budget < 1:
        return None
    leaf = min(1.0, 0.2 * depth)
    u = rng.random()
    if u < leaf or budget < 3:
        return rng.choice(TERMINALS)
    if u < leaf + (1 - leaf) * 0.15:  # (S)
        inner = _derive(rng, depth + 1, budget - 2)
        return None if inner is None else f"({inner})"
    left = _derive(rng, depth + 1, budget - 2)
    if left is None:
        return None
    right = _derive(rng, depth + 1, budget - 1 - len(left))
    return None if right is None else f"{left}{rng.choice(OPERATORS)}{right}"
