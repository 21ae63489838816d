"""Unit SPEC parsing and formatting."""

import numpy as np
import pytest

from deepgen_core.errors import InputError
from deepgen_core.units import format_units, parse_units, select_columns

SIZES = [784, 500, 500, 2000]


def test_parse_union_sorts_layers_and_units():
    selection = parse_units("3:0-2, 1:*,3:10,3:1", SIZES)
    assert list(selection) == [1, 3]
    assert len(selection[1]) == 500
    assert selection[3].tolist() == [0, 1, 2, 10]
    assert selection.n_units == 504


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("1:*", "1:*"),
        ("1:0-499", "1:*"),
        ("2:0-99", "2:0-99"),
        ("1:*,3:0-49", "1:*,3:0-49"),
        ("2:5,2:6,2:7,2:9", "2:5-7,2:9"),
        ("0:3", "0:3"),
    ],
)
def test_canonical_spec_round_trips(spec, canonical):
    selection = parse_units(spec, SIZES)
    assert selection.spec() == canonical
    again = parse_units(canonical, SIZES)
    assert list(again) == list(selection)
    for layer in selection:
        assert np.array_equal(again[layer], selection[layer])


def test_whitespace_anywhere_is_ignored():
    assert parse_units("\n1:*,\t2:0-9 ", SIZES).spec() == "1:*,2:0-9"


def test_format_without_sizes_writes_ranges():
    assert format_units({1: np.arange(500)}) == "1:0-499"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "the unit SPEC is empty"),
        ("1", "invalid unit SPEC item '1'"),
        ("1:a-b", "invalid unit SPEC item '1:a-b'"),
        ("1:*;2:*", "invalid unit SPEC item"),
        ("\u0967:*", "invalid unit SPEC item '\u0967:\\*'"),
        ("4:*", "layer 4 in unit SPEC '4:\\*' does not exist: this net has layers 0"),
        (
            "2:500",
            "unit 500 in unit SPEC '2:500' is out of range: layer 2 has units 0 to 499",
        ),
        (
            "1:20-10",
            "range 20-10 .* runs backwards; write the smaller index first, as 10-20",
        ),
    ],
)
def test_invalid_spec_is_rejected_with_grammar(spec, message):
    with pytest.raises(InputError, match=message) as error:
        parse_units(spec, SIZES)
    if "invalid" in message or "empty" in message:
        assert "for example 1:* or 2:0-99 or 1:*,3:0-49" in str(error.value)


def test_select_columns_concatenates_in_spec_order():
    activations = [np.arange(12).reshape(2, 6), np.arange(100, 108).reshape(2, 4)]
    selection = parse_units("1:2-3,0:0", [6, 4])
    columns = select_columns(activations, selection)
    assert columns.tolist() == [[0, 102, 103], [6, 106, 107]]
