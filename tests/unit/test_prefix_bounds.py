"""``prefix_upper_bound``: the range ``prefix <= x < bound`` is exactly "starts with prefix"."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ruvon.implementations.persistence.queries import prefix_upper_bound

# Any code point UTF-8 can encode (no lone surrogates: text columns cannot hold them).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


def test_the_last_character_goes_up_by_one() -> None:
    assert prefix_upper_bound("abc") == "abd"
    assert prefix_upper_bound("0b8f-") == "0b8f."
    assert prefix_upper_bound("\ud7ff") == "\ue000"  # over the surrogates


def test_trailing_maximal_characters_are_dropped() -> None:
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\U0010ffff\U0010ffff") is None
    assert prefix_upper_bound("") is None


@given(prefix=TEXT, other=TEXT)
def test_the_range_holds_exactly_the_texts_with_the_prefix(prefix: str, other: str) -> None:
    for text in (other, prefix + other, prefix[:-1] + other):
        bound = prefix_upper_bound(prefix)
        in_range = prefix <= text and (bound is None or text < bound)
        assert in_range == text.startswith(prefix), (prefix, text, bound)
