"""Terminal tables: cells shown as given, columns lined up whatever their width."""

from __future__ import annotations

import pytest
from qemu_fakes import FakeImages, fake_build, fake_images, write_recipe  # noqa: F401  (fixtures)

from harness import cli
from harness.images.recipe import recipe_hash
from harness.text_table import text_table


def test_cells_are_shown_as_given_and_aligned_left_unless_asked() -> None:
    shown = text_table([["0012345678901234", "7", "3 MiB"], ["ab", "12", "120 MiB"]],
                       ["digest", "n", "size"], right={2})
    assert shown.splitlines() == [
        "digest            n       size",
        "----------------  ---  -------",
        "0012345678901234  7      3 MiB",
        "ab                12   120 MiB",
    ]


def test_without_rule_the_header_is_the_first_line() -> None:
    assert text_table([["a", "b"]], ["X", "Y"], rule=False).splitlines() == ["X    Y", "a    b"]


def test_images_list_lines_up_a_name_longer_than_usual(
    fake_images: FakeImages, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]  # noqa: F811
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(fake_images.paths.cache))
    monkeypatch.setenv("HARNESS_STATE", str(fake_images.paths.state))
    monkeypatch.setenv("HARNESS_VM_IMAGES", str(fake_images.recipes_root))
    long_variant = "with-a-name-longer-than-eighteen"
    write_recipe(fake_images.recipes_root, long_variant)
    digests = {name: recipe_hash(fake_images.recipe_dir(variant))
               for name, variant in (("linux-tiny", "tiny"), (f"linux-{long_variant}", long_variant))}
    for name, digest in digests.items():
        fake_build(fake_images.store, name, digest)

    assert cli.main(["images", "list"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        name = line.split()[0]
        assert line.index(digests[name]) == header.index("DIGEST"), line
        assert line.index("current") == header.index("STATUS"), line
