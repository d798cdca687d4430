"""json_text.dumps writes the text json.dumps(indent=2) writes (summary.json's)."""

import json
import random

import pytest

from soak.analysis import json_text


def a_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["dict", "list", "tuple"] * (depth < 4) + ["plain"] * 4)
    if kind == "dict":
        return {
            rng.choice(["a", "b", "é", "x y", 'q"', "\n"]) + str(i): a_value(rng, depth + 1)
            for i in range(rng.randrange(4))
        }
    if kind in ("list", "tuple"):
        items = [a_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        return items if kind == "list" else tuple(items)
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -7,
            2**70,
            0.1,
            -0.0,
            1e300,
            3.14159,
            float("nan"),
            float("inf"),
            "",
            "swap",
            "ünïcode ☃",
            'quote " and \\ backslash',
            "\x00\t",
        ]
    )


@pytest.mark.parametrize("seed", range(200))
def test_the_same_text_as_json_dumps(seed):
    value = a_value(random.Random(seed))
    assert json_text.dumps(value) == json.dumps(value, indent=2)


def test_a_summary_shaped_value():
    swaps = [{"index": i, "p99_ms": i / 7, "note": None, "completed": True} for i in range(50)]
    value = {"variants": [{"name": "glibc", "swaps": swaps, "judged": list(range(9)), "x": {}}]}
    assert json_text.dumps(value) == json.dumps(value, indent=2)


def test_a_dict_of_containers_needs_str_keys():
    with pytest.raises(TypeError):
        json_text.dumps({1: [1, [2]]})
