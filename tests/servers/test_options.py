"""Profile options follow KubeSpawner's profile_list semantics."""

from __future__ import annotations

import pytest

from servers.options import OptionsError, choose, merge

IMAGE = {
    "image": {
        "display_name": "Image",
        "choices": {
            "base": {"display_name": "Base", "overrides": {"image": "base:1"}},
            "sci": {"display_name": "SciPy", "default": True, "overrides": {"image": "sci:1"}},
        },
        "unlisted_choice": {
            "enabled": True,
            "display_name": "Other image",
            "validation_regex": r"^quay\.io/[a-z/]+:[0-9.]+$",
            "validation_message": "Only quay.io images with a version tag",
            "override_key": "image",
        },
    }
}


def test_default_choice_is_used_when_nothing_is_chosen():
    assert choose(IMAGE, {}) == {"image": "sci:1"}


def test_chosen_choice_overrides_apply():
    assert choose(IMAGE, {"image": "base"}) == {"image": "base:1"}


def test_unknown_choice_is_rejected_with_the_valid_ones_listed():
    with pytest.raises(OptionsError, match="'gpu' is not one of base, sci"):
        choose(IMAGE, {"image": "gpu"})


def test_unknown_option_key_is_rejected():
    with pytest.raises(OptionsError, match="unknown option: colour"):
        choose(IMAGE, {"colour": "red"})


def test_unlisted_choice_is_validated_by_its_regex():
    assert choose(IMAGE, {"image--unlisted-choice": "quay.io/org/img:2.1"}) == {
        "image": "quay.io/org/img:2.1"
    }
    with pytest.raises(OptionsError, match=r"Only quay\.io images"):
        choose(IMAGE, {"image--unlisted-choice": "evil.example/img:latest"})


def test_unlisted_choice_is_refused_when_not_enabled():
    options = {"size": {"choices": {"s": {"overrides": {"mem_limit": "1G"}}}}}
    with pytest.raises(OptionsError, match="free-text values are not allowed"):
        choose(options, {"size": {"unlisted": "64G"}})


def test_unlisted_choice_overrides_substitute_the_typed_value():
    options = {
        "image": {
            "choices": {"base": {"overrides": {"image": "base:1"}}},
            "unlisted_choice": {
                "enabled": True,
                "validation_regex": r"^[a-z-]+:[0-9.]+$",
                "overrides": {"image": "quay.io/jupyter/{value}", "extra_labels": {"i": "{value}"}},
            },
        }
    }
    assert choose(options, {"image--unlisted-choice": "scipy-notebook:2025.1"}) == {
        "image": "quay.io/jupyter/scipy-notebook:2025.1",
        "extra_labels": {"i": "scipy-notebook:2025.1"},
    }


@pytest.mark.parametrize(
    ("layers", "merged"),
    [
        (({"a": 1}, {"a": 2}), {"a": 2}),
        (({"l": [1, 2]}, {"l": [3]}), {"l": [3]}),
        (({"d": {"x": 1, "y": 1}}, {"d": {"y": 2}}), {"d": {"x": 1, "y": 2}}),
        (({"d": {"x": 1, "y": 1}}, {"d": {"y": None}}), {"d": {"x": 1}}),
        (
            ({"d": {"e": {"x": 1}}}, {"d": {"e": {"z": 3}}}, {"d": {"e": {"x": 0}}}),
            {"d": {"e": {"x": 0, "z": 3}}},
        ),
        (({"cmd": ["a"]}, {"cmd": None}), {"cmd": None}),
    ],
)
def test_overrides_merge_like_kubespawner(layers, merged):
    assert merge(*layers) == merged
