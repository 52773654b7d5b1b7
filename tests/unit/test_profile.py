"""Profiles load from TOML into frozen values; every malformed input names file, key and type."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from harness.profile import (
    BUILTIN_DIR,
    ProfileError,
    bind,
    builtin_profiles,
    load_profile,
    parse_profile,
    select_profile,
)

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


LINUX_USER = {"home": "/home/u", "user": "u", "upload": "/tmp/up", "tarball": "/tmp/up/t.tar.gz"}


def test_tiles_current_linux_server_matches_contract() -> None:
    tiles = select_profile(load_profile("tiles"), "linux", "0.4.20-canary.1")
    assert tiles.applied == ()
    assert tiles.api.flavour == "openai" and tiles.api.supports_stream and tiles.api.supports_non_stream
    assert not tiles.api.supports_seed
    assert tiles.api.model.endswith("-GGUF:Q4_K_M") and not tiles.api.model.startswith("mlx-community/")
    assert tiles.install.env["TILES_DEV_TARBALL"] == "{tarball}"
    assert "--dev" in tiles.install.command
    assert tiles.server.port == 6969 and tiles.server.health_path == "/ping"
    assert tiles.layout.layers == ("cpython3.13", "app-server")
    assert {"pi/*", "vendor/*"} <= set(tiles.layout.required_paths)
    assert tiles.release.platforms == ("linux-x86_64", "darwin-arm64")  # Tiles builds no linux-arm64
    bound = bind(tiles, LINUX_USER)
    assert bound.context["bin"] == "/home/u/.local/bin" and bound.context["lib"] == "/home/u/.local/share/tiles"
    assert "/home/u/.local/share/applications/tiles.desktop" in bound.install.writes
    assert "/home/u/.local/share/icons/hicolor/128x128/apps/tiles.png" in bound.install.writes
    assert bound.server.load is not None
    assert bound.server.load.json["model_cache_path"].startswith("/home/u/.local/share/tiles/models/")
    assert bound.uninstall is not None and bound.uninstall.command == "/home/u/.local/bin/tiles uninstall"


def test_tiles_sse_era_and_macos_are_picked_by_version_and_os() -> None:
    tiles = load_profile("tiles")
    old_mac = select_profile(tiles, "darwin", "0.4.3")
    assert old_mac.applied == ("macos", "tiles-sse")
    assert old_mac.api.flavour == "tiles-sse" and not old_mac.api.supports_non_stream
    assert dict(old_mac.api.extra) == {"chat_start": False, "python_code": ""}
    assert old_mac.api.model.startswith("mlx-community/")
    assert old_mac.layout.layers == ("cpython3.13", "framework-mlx", "app-server")
    assert old_mac.layout_table()["layers"] == ["cpython3.13", "framework-mlx", "app-server"]
    mac = bind(select_profile(tiles, "darwin", "0.4.18"), {**LINUX_USER, "home": "/Users/admin", "user": "admin"})
    assert mac.profile.api.flavour == "openai"
    assert mac.context["bin"] == "/usr/local/bin" and mac.context["lib"] == "/usr/local/share/tiles"
    assert mac.context["app_python"] == "/usr/local/share/tiles/server/stack_export_prod/app-server/bin/python"
    assert not any("applications" in w for w in mac.install.writes)
    # A pre-release of the boundary version is still the older server (semver order).
    assert select_profile(tiles, "linux", "0.4.17-canary.1").applied == ("tiles-sse",)
    assert select_profile(tiles, "linux", None).applied == ()  # unknown version: the current server


def test_a_variant_can_be_forced() -> None:
    tiles = load_profile("tiles")
    assert select_profile(tiles, "linux", "0.4.20", forced=["tiles-sse"]).api.flavour == "tiles-sse"
    with pytest.raises(ProfileError, match="no variant named 'nope'"):
        select_profile(tiles, "linux", "0.4.20", forced=["nope"])


def test_bad_variant_range_fails_at_load(tmp_path: Path) -> None:
    text = REFERENCE.read_text() + '\n[[variant]]\nname = "old"\nversions = "~1.0"\n'
    with pytest.raises(ProfileError, match="variant\\[0\\]\\.versions: not a version range"):
        load_profile(write(tmp_path, text))


def test_bind_renders_every_template_once() -> None:
    ref = load_profile("reference")
    bound = bind(ref, {"home": "/home/t", "user": "t", "upload": "/tmp/up", "tarball": "/tmp/up/x.tar.gz"})
    assert bound.install.command == "sh /tmp/up/install.sh --tarball /tmp/up/x.tar.gz"
    assert list(bound.server.writes) == ["/home/t/.local/share/refapp", "/home/t/.config/refapp"]
    assert bound.server.start.startswith(f"/home/t/.local/bin/refapp serve --port {ref.server.port}")
    assert bound.text("{lib}/x") == "/home/t/.local/share/refapp/x"


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
        ("port = 6969", 'port = "6969"', "server.port: wrong type (expected an integer, got str '6969')"),
        ("port = 6969", "port = 70000", "server.port: out of range (expected a TCP/UDP port, 1-65535, got 70000)"),
        ("timeout_s = 1200", "timeout_s = -1", "install.timeout_s: not positive (expected a positive number of seconds, got -1)"),
        ('writes = ["{data}", "{config}"]', 'writes = "{data}"', "server.writes: wrong type (expected an array, got str '{data}')"),
        ('flavour = "openai"', 'flavour = "grpc"', "api.flavour: not a known value (expected one of openai, openai-sse, tiles-sse, got 'grpc')"),
        ("seeds = [7, 8]", "seeds = [7, 7]", "determinism.seeds: not two seeds (expected two different integers, got [7, 7])"),
        ('writes = ["{bin}/refapp", "{lib}"]', 'writes = ["{bin}/refapp", 3]', "install.writes[1]: wrong type (expected a string, got int 3)"),
        ("[install]", "[install]\ncomand = 'x'", "install.comand: unknown key; did you mean 'install.command'?"),
        ('start = "{bin}/refapp serve', 'start = "{bim}/refapp serve', "server.start: uses the placeholder {bim}, which is not defined"),
        ('product = "refapp"', "", "release.product: missing (expected a string)"),
        ('health_path = "/health"', 'health_path = "health"', "server.health_path: not a URL path (expected a path starting with '/', got 'health')"),
        ('platforms = ["linux-x86_64"]', 'platforms = ["windows"]', "release.platforms[0]: not a platform (expected '<os>-<arch>'"),
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
    assert "did you mean 'install.command'?" in str(err.value)
    [problem] = err.value.problems
    assert (problem.path, problem.suggestion) == ("install.comand", "install.command")


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
    assert "os.darwin.server.port: wrong type (expected an integer, got str 'x')" in str(err.value)


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
