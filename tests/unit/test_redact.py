"""Redaction: which keys are secret, which value shapes are, and that structure survives (reliability.md section 3)."""

from __future__ import annotations

import pytest

from rlx.redact import REDACTED, is_secret_key, redact, redact_text, secret_paths, secret_values

CANARY_SK = "sk-canary0123456789abcdefXYZ"
CANARY_HF = "hf_canaryABCDEFGHIJKLMNOPQRSTUV"
WANDB_HEX = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize("key", [
    "trainer.wandb_api_key", "+trainer.wandb_api_key", "WANDB_API_KEY", "HF_TOKEN", "RAY_AUTH_TOKEN", "password",
    "db_passwd", "AWS_SECRET_ACCESS_KEY", "aws_access_key_id", "credentials", "private_key", "apiKey", "auth",
    "x/openai_key", "GITHUB_TOKEN", "hub.authToken",
])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    "max_tokens", "use_cls_token", "tokenizer", "data.prompt_key", "actor_rollout_ref.actor.ppo_max_token_len_per_gpu",
    "max_num_batched_tokens", "loss_agg_mode", "keyboard", "monkey", "author", "PATH", "HOME", "data.reward_fn_key",
])
def test_non_secret_keys(key):
    assert not is_secret_key(key)


def test_no_key_of_verls_default_config_is_treated_as_secret():
    # verl's own schema holds no secrets; a key listed here would hide a real setting from every sink.
    from rlx.resolve import leaf_paths, verl_defaults

    hidden = [k for k in leaf_paths(verl_defaults()) if is_secret_key(k)]
    assert hidden == []


def test_redact_text_hides_token_shapes_userinfo_and_pairs_but_keeps_env_refs():
    text = (f"+trainer.wandb_api_key={CANARY_SK} hf={CANARY_HF} key {WANDB_HEX} "
            "uri=https://alice:s3cretpw@mlflow.example.com/x password: hunter22 "
            "token=${oc.env:HF_TOKEN} max_tokens=512 AKIAABCDEFGHIJKLMNOP")
    out = redact_text(text)
    for secret in (CANARY_SK, CANARY_HF, WANDB_HEX, "s3cretpw", "hunter22", "AKIAABCDEFGHIJKLMNOP"):
        assert secret not in out
    assert "https://alice:" in out and "@mlflow.example.com" in out
    assert "token=${oc.env:HF_TOKEN}" in out
    assert "max_tokens=512" in out
    assert redact_text("google-auth==2.40.0\noauthlib==3.2.2\n") == "google-auth==2.40.0\noauthlib==3.2.2\n"


def test_an_exception_and_its_message_in_a_log_are_not_a_secret_pair():
    """`KeyError: 'input_ids'` in a failed job's log tail is the one line that says what broke; `Key` in the
    class name once made it a `key: value` pair and hid the missing field's name."""
    for line in ("KeyError: 'input_ids'", "KeyError: 'attention_mask'", "TokenizerError: bad merges",
                 "AuthenticationWarning: retrying"):
        assert redact_text(line) == line
    assert redact_text(f"KeyError: {CANARY_SK}") == f"KeyError: {REDACTED}"  # a token shape is still caught
    assert redact_text("api_key: abcdefgh12 Key: hunter22") == f"api_key: {REDACTED} Key: {REDACTED}"


def test_a_logged_float_under_a_token_metric_is_kept():
    """verl's step line logs `rollout_corr/chi2_token:-0.0148`: a number, not a token."""
    line = "rollout_corr/chi2_token:-0.014873 rollout_corr/chi2_seq:0.028 x/token_ratio:3.3e-05"
    assert redact_text(line) == line
    for secret in ("token: 12345678", "token=abc.def", "password: hunter22.5x"):
        assert REDACTED in redact_text(secret), secret


def test_redact_text_replaces_known_literal_secrets_of_any_shape():
    assert "plainpassword99" not in redact_text("logged plainpassword99 here", secrets=["plainpassword99"])


def test_redact_keeps_structure_and_replaces_only_secrets():
    cfg = {"trainer": {"wandb_api_key": "abc12345", "project_name": "p", "logger": ["console", CANARY_SK]},
           "data": {"prompt_key": "prompt", "max_tokens": 5}, "hf_token": "${oc.env:HF_TOKEN}", "api_key": None}
    out = redact(cfg)
    assert out["trainer"]["wandb_api_key"] == REDACTED
    assert out["trainer"]["project_name"] == "p"
    assert out["trainer"]["logger"] == ["console", REDACTED]
    assert out["data"] == {"prompt_key": "prompt", "max_tokens": 5}
    assert out["hf_token"] == "${oc.env:HF_TOKEN}"
    assert out["api_key"] is None
    assert cfg["trainer"]["wandb_api_key"] == "abc12345"  # input untouched


def test_secret_values_collects_config_and_env_secrets():
    cfg = {"trainer": {"wandb_api_key": "literal-key-1", "x": f"see {CANARY_HF}"}, "ref": "${oc.env:WANDB_API_KEY}"}
    env = {"WANDB_API_KEY": "envsecretvalue", "HOME": "/home/me", "HF_TOKEN": "", "RAY_AUTH_MODE": "disabled",
           "HF_TOKEN_PATH": "/home/me/.cache/token"}
    found = secret_values(cfg, env)
    assert set(found) == {"literal-key-1", CANARY_HF, "envsecretvalue"}
    assert secret_paths({"trainer.wandb_api_key": "literal-key-1", "a.b": "${oc.env:X}", "c": 1}) == \
        ["trainer.wandb_api_key"]
