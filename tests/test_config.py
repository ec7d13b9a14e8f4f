"""sitegen.yaml: typed, unknown keys with "did you mean", located errors."""

from __future__ import annotations

from generator.config import SiteConfig, load_config


def test_minimal_config_has_defaults(tmp_path):
    (tmp_path / "sitegen.yaml").write_text("title: T\n")
    config, diags = load_config(tmp_path)
    assert not diags
    assert isinstance(config, SiteConfig)
    assert config.language == "zh" and config.output_dir == "output"
    assert config.diagrams.renderer == "embedded" and config.pdf.page_size == "A4"


def test_unknown_key_did_you_mean_with_location(tmp_path):
    (tmp_path / "sitegen.yaml").write_text("title: T\nlanguge: en\ndiagrams:\n  rendrer: ink\n")
    config, diags = load_config(tmp_path)
    assert config is None
    text = sorted(d.format() for d in diags)
    assert text == [
        "sitegen.yaml:2:1: error[schema]: unknown key 'languge' (did you mean 'language'?)",
        "sitegen.yaml:4:3: error[schema]: unknown key 'rendrer' (did you mean 'renderer'?)",
    ]


def test_all_problems_listed(tmp_path):
    (tmp_path / "sitegen.yaml").write_text("language: fr\nbase_url: javascript:alert(1)\ntheme:\n  accent_color: red\n")
    config, diags = load_config(tmp_path)
    assert config is None
    assert any("title: required field is missing" in d.message for d in diags)
    assert any(d.location.line == 1 and d.message.startswith("language:") for d in diags)
    assert any(d.location.line == 2 and "http(s) URL" in d.message for d in diags)
    assert any(d.location.line == 4 and "#RRGGBB" in d.message for d in diags)


def test_trust_remote_code_rejected(tmp_path):
    (tmp_path / "sitegen.yaml").write_text("title: T\ndraft:\n  trust_remote_code: true\n")
    config, diags = load_config(tmp_path)
    assert config is None
    assert diags[0].location.line == 3 and "trust_remote_code" in diags[0].message


def test_missing_config_is_a_clear_error(tmp_path):
    config, diags = load_config(tmp_path)
    assert config is None and "no sitegen.yaml" in diags[0].message


def test_overrides_win(tmp_path):
    (tmp_path / "sitegen.yaml").write_text("title: T\npdf:\n  enabled: false\n")
    config, _ = load_config(tmp_path, {"pdf.enabled": True, "output_dir": None})
    assert config.pdf.enabled is True and config.output_dir == "output"
