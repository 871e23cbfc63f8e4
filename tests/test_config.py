from pathlib import Path

import pytest
import yaml

from careqa.config import hash_token, load_settings
from careqa.errors import ConfigError, UnknownTenantError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base() -> dict:
    return {"tenants": [{"id": "pharmacy", "name": "P"}]}


def test_shipped_local_config_is_valid():
    settings = load_settings(REPO / "config" / "local.yaml")
    assert [t.id for t in settings.tenants] == ["pharmacy", "clinic"]
    assert settings.tenant("pharmacy").kb_path == (REPO / "sample_kb" / "pharmacy").resolve()


def test_a_bad_number_names_the_field(tmp_path):
    data = base() | {"retrieval": {"top_k": 0}}
    with pytest.raises(ConfigError, match=r"retrieval\.top_k"):
        load_settings(write(tmp_path, data))


def test_an_identity_for_an_unknown_tenant_is_refused(tmp_path):
    data = base() | {"identities": [{"subject": "a", "tenant": "nope", "token_sha256": hash_token("x")}]}
    with pytest.raises(ConfigError, match=r"identities\.0\.tenant: unknown tenant 'nope'"):
        load_settings(write(tmp_path, data))


def test_a_tenant_bar_out_of_range_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"tenants\.0\.min_score"):
        load_settings(write(tmp_path, {"tenants": [{"id": "pharmacy", "name": "P", "min_score": 5}]}))


def test_an_unknown_builtin_glossary_names_the_field(tmp_path):
    tenant = {"id": "pharmacy", "name": "P", "builtin_glossaries": ["shorthand", "drugs"]}
    with pytest.raises(ConfigError, match=r"tenants\.0\.builtin_glossaries\.1"):
        load_settings(write(tmp_path, {"tenants": [tenant]}))


def test_an_unknown_field_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"retrieval\.topk"):
        load_settings(write(tmp_path, base() | {"retrieval": {"topk": 3}}))


def test_a_malformed_tenant_id_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"tenants\.0\.id"):
        load_settings(write(tmp_path, {"tenants": [{"id": "Bad Tenant!", "name": "x"}]}))


def test_sagemaker_transport_needs_an_endpoint_name(tmp_path):
    data = base() | {"models": {"llm": {"config": "local-gemma-3-270m", "transport": "sagemaker"}}}
    with pytest.raises(ConfigError, match=r"models\.llm"):
        load_settings(write(tmp_path, data))


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.yaml")


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREQA_RETRIEVAL__TOP_K", "7")
    assert load_settings(write(tmp_path, base())).retrieval.top_k == 7


def test_unknown_tenant_lookup_lists_the_known_ones(tmp_path):
    settings = load_settings(write(tmp_path, base()))
    with pytest.raises(UnknownTenantError, match="configured tenants: pharmacy"):
        settings.tenant("hospital")


def test_an_unknown_model_config_fails_at_start_up(tmp_path):
    from careqa.runtime import Runtime

    settings = load_settings(write(tmp_path, base() | {"models": {"llm": {"config": "no-such-model"}}}))
    with pytest.raises(ConfigError, match=r"models\.llm\.config: unknown model 'no-such-model'"):
        Runtime(settings)


def test_the_s3_source_store_needs_its_bucket(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\.bucket: required when driver is s3"):
        load_settings(write(tmp_path, base() | {"sources": {"driver": "s3"}}))


@pytest.mark.parametrize(
    ("sources", "field"),
    [
        ({"driver": "s3", "bucket": "Not_A_Bucket"}, r"sources\.bucket"),
        ({"driver": "ftp"}, r"sources\.driver"),
        ({"max_bytes": 0}, r"sources\.max_bytes"),
        ({"max_bytes": 10**9}, r"sources\.max_bytes"),
    ],
)
def test_a_bad_source_store_setting_names_the_field(tmp_path, sources, field):
    with pytest.raises(ConfigError, match=field):
        load_settings(write(tmp_path, base() | {"sources": sources}))
