"""Profiles load from TOML into frozen values; every malformed input names file, key and type."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from harness.profile import BUILTIN_DIR, ProfileError, builtin_profiles, load_profile, parse_profile

REFERENCE = BUILTIN_DIR / "reference.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.toml"
    path.write_text(text, encoding="utf-8")
    return path


def reference_with(tmp_path: Path, old: str, new: str) -> Path:
    text = REFERENCE.read_text(encoding="utf-8")
    assert old in text, f"test fixture drifted: {old!r} not in reference.toml"
    return write(tmp_path, text.replace(old, new, 1))


@pytest.mark.parametrize("name", ["reference", "tiles"])
def test_builtin_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.prompts, "a profile without prompts cannot check completions"
    assert dataclasses.is_dataclass(profile)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.name = "other"  # type: ignore[misc]


def test_builtin_list_names_both() -> None:
    assert {"reference", "tiles"} <= set(builtin_profiles())


def test_tiles_profile_matches_contract() -> None:
    tiles = load_profile("tiles")
    assert tiles.api.flavour == "tiles-sse"
    assert tiles.api.supports_stream and not tiles.api.supports_non_stream
    assert not tiles.api.supports_seed
    assert tiles.install.env["TILES_DEV_TARBALL"] == "{tarball}"
    assert "--dev" in tiles.install.command
    assert tiles.server.port == 6969 and tiles.server.health_path == "/ping"
    assert tiles.layout.layers == ("cpython3.13", "app-server")
    assert tiles.for_os("darwin").layout.layers == ("cpython3.13", "framework-mlx", "app-server")
    assert tiles.for_os("darwin").layout_table()["layers"] == ["cpython3.13", "framework-mlx", "app-server"]
    linux = tiles.context({"home": "/home/u", "user": "u"})
    assert linux["bin"] == "/home/u/.local/bin"
    assert linux["lib"] == "/home/u/.local/share/tiles"
    mac = tiles.for_os("darwin").context({"home": "/Users/admin", "user": "admin"})
    assert mac["bin"] == "/usr/local/bin" and mac["lib"] == "/usr/local/share/tiles"
    assert mac["app_python"] == "/usr/local/share/tiles/server/stack_export_prod/app-server/bin/python"


def test_render_expands_paths_and_runtime_values() -> None:
    ref = load_profile("reference")
    ctx = ref.context({"home": "/home/t", "user": "t", "upload": "/tmp/up", "tarball": "/tmp/up/x.tar.gz"})
    assert ref.render(ref.install.command, ctx) == "sh /tmp/up/install.sh --tarball /tmp/up/x.tar.gz"
    assert [ref.render(w, ctx) for w in ref.server.writes] == ["/home/t/.local/share/refapp", "/home/t/.config/refapp"]
    assert ref.render(ref.server.start, ctx).startswith(f"/home/t/.local/bin/refapp serve --port {ref.server.port}")


def test_profile_by_path(tmp_path: Path) -> None:
    path = write(tmp_path, REFERENCE.read_text().replace('name = "reference"', 'name = "mine"'))
    assert load_profile(str(path)).name == "mine"
    assert load_profile(path).source == path


def test_unknown_profile_lists_builtins() -> None:
    with pytest.raises(ProfileError) as err:
        load_profile("nosuch")
    assert "nosuch" in str(err.value) and "reference" in err.value.hint


def test_missing_file() -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("/nonexistent/p.toml")


def test_bad_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[profile\nname=1")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and "not valid TOML" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("port = 6969", 'port = "6969"', "key 'server.port' must be an integer, got str '6969'"),
        ("port = 6969", "port = 70000", "key 'server.port' must be a TCP port"),
        ("timeout_s = 1200", "timeout_s = -1", "key 'install.timeout_s' must be a positive number"),
        ('writes = ["{data}", "{config}"]', 'writes = "{data}"', "key 'server.writes' must be an array"),
        ('flavour = "openai"', 'flavour = "grpc"', "key 'api.flavour' must be one of openai, openai-sse, tiles-sse"),
        ("seeds = [7, 8]", "seeds = [7, 7]", "key 'determinism.seeds' must be two different integers"),
        ('writes = ["{bin}/refapp", "{lib}"]', 'writes = ["{bin}/refapp", 3]', "key 'install.writes[1]' must be a string"),
        ("[install]", "[install]\ncomand = 'x'", "key 'install.comand' is not a known setting"),
        ('start = "{bin}/refapp serve', 'start = "{bim}/refapp serve', "uses the placeholder {bim}"),
        ('product = "refapp"', "", "key 'release.product' is missing (expected a string)"),
        ('health_path = "/health"', 'health_path = "health"', "must start with '/'"),
        ('platforms = ["linux-x86_64"]', 'platforms = ["windows"]', "key 'release.platforms[0]' must look like"),
    ],
)
def test_validation_errors_name_key_and_type(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = reference_with(tmp_path, old, new)
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    text = str(err.value)
    assert str(path) in text
    assert expected in text
    assert err.value.hint, "every profile error must say what to do"


def test_typo_gets_a_suggestion(tmp_path: Path) -> None:
    path = reference_with(tmp_path, "[install]", "[install]\ncomand = 'x'")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert "did you mean 'install.command'" in err.value.hint


def test_prompt_needs_exactly_one_form(tmp_path: Path) -> None:
    path = reference_with(tmp_path, 'id = "greeting"\nprompt = "hello, how are you?"',
                          'id = "greeting"\nprompt = "hi"\nmessages = [{role = "user", content = "x"}]')
    with pytest.raises(ProfileError, match="exactly one"):
        load_profile(path)


def test_duplicate_prompt_ids(tmp_path: Path) -> None:
    path = reference_with(tmp_path, 'id = "weather"', 'id = "greeting"')
    with pytest.raises(ProfileError, match="repeats prompt id 'greeting'"):
        load_profile(path)


def test_messages_form_and_system_prompt() -> None:
    ref = load_profile("reference")
    weather = next(p for p in ref.prompts if p.id == "weather")
    assert [m.role for m in weather.messages] == ["system", "user"]
    story = next(p for p in ref.prompts if p.id == "story")
    assert story.max_tokens == 48


def test_os_override_validated_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, REFERENCE.read_text() + '\n[os.darwin.server]\nport = "x"\n')
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    assert "server.port" in str(err.value) and "[os.darwin]" in str(err.value)


def test_os_override_unknown_os(tmp_path: Path) -> None:
    path = write(tmp_path, REFERENCE.read_text() + '\n[os.windows.paths]\nbin = "C:"\n')
    with pytest.raises(ProfileError, match="os.windows"):
        load_profile(path)


def test_parse_profile_uninstall_optional() -> None:
    data = tomllib.loads(REFERENCE.read_text())
    assert parse_profile(data, REFERENCE).uninstall is None
    data["uninstall"] = {"command": "{bin}/refapp uninstall", "leaves": ["{data}/logs"]}
    uninstall = parse_profile(data, REFERENCE).uninstall
    assert uninstall is not None and uninstall.timeout_s == 120.0 and uninstall.leaves == ("{data}/logs",)
    data["uninstall"] = {"command": "{nope}/x"}
    with pytest.raises(ProfileError, match="uninstall.command"):
        parse_profile(data, REFERENCE)
