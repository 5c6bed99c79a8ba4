"""C++ presets and defaults equal Python's, field by field (read through the compiled binding)."""

from __future__ import annotations

import dataclasses

import pytest

from kapao_edge.postprocess import PostprocessConfig

extension = pytest.importorskip("kapao_edge._postproc", reason="C++ post-processor not built")

FIELDS = [f.name for f in dataclasses.fields(PostprocessConfig)]


@pytest.mark.parametrize(
    ("cpp_name", "python_config"),
    [
        ("default_config", PostprocessConfig()),
        ("val_config", PostprocessConfig.official_val()),
        ("demo_config", PostprocessConfig.official_demo()),
    ],
)
def test_cpp_preset_equals_python(cpp_name: str, python_config: PostprocessConfig) -> None:
    cpp_config = getattr(extension, cpp_name)()
    assert sorted(cpp_config) == sorted(FIELDS)  # no field missing on either side
    for name in FIELDS:
        want = getattr(python_config, name)
        got = cpp_config[name]
        assert type(got) is type(want), name
        assert got == want, f"{cpp_name}: {name} is {got!r} in C++, {want!r} in Python"
