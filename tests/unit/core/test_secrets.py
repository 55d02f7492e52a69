"""Secret handling in one place: redaction of each secret kind (ordinary text stays as it was),
masking of known secrets and URL credentials in error text."""

from __future__ import annotations

import pytest

from bot.core.errors import exception_line, first_line
from bot.core.secrets import mask, redact, redact_lines, redact_value, strip_credentials

WANDB_KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"


@pytest.mark.parametrize(
    "text, secret",
    [
        (f"WANDB_API_KEY={WANDB_KEY}", WANDB_KEY),
        (f"wandb login {WANDB_KEY}", WANDB_KEY),
        (f"wandb login --relogin {WANDB_KEY}", WANDB_KEY),
        ("key: local-" + "ab12" * 10, "local-" + "ab12" * 10),
        ("using local-0123456789abcdef0123456789abcdef01234567 for the server", "local-0123456789abcdef"),
        ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F"),
        ("gho_16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7e42F"),
        ("ghu_16C7e42F292c6912E7710c838347Ae178B4a ghs_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F"),
        ("ghr_16C7e42F292c6912E7710c838347Ae178B4a", "ghr_16C7e42F"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABC"),
        ("ANTHROPIC key sk-ant-api03-AbCdEf0123456789-xyz", "sk-ant-api03"),
        ("openai sk-proj-AbCdEf0123456789AbCdEf0123", "sk-proj-AbCd"),
        ("openai sk-AbCdEf0123456789AbCdEf0123", "sk-AbCdEf"),
        ("AKIAIOSFODNN7EXAMPLE is the access key id", "AKIAIOSFODNN7EXAMPLE"),
        ("ASIAIOSFODNN7EXAMPLE", "ASIAIOSFODNN7EXAMPLE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc.def", "eyJhbGciOiJIUzI1NiJ9"),
        ("curl -H 'authorization: token abcdef123456'", "abcdef123456"),
        ("sent bearer abcdefgh12345678", "abcdefgh12345678"),
        ("git push https://x-access-token:v1.abc123def456@github.com/o/r.git", "v1.abc123def456"),
        ("DB_PASSWORD=hunter2", "hunter2"),
        ('{"api_key": "12345 with space", "n": 3}', "12345 with space"),
        ("client_secret: s3cr3t", "s3cr3t"),
        ("HF_TOKEN=hf_shortish", "hf_shortish"),
        ("passwd='abc'", "abc"),
        ("apikey=QWERTY123", "QWERTY123"),
        ("encryption_key=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a3928"),
    ],
)
def test_secret_is_redacted(text, secret):
    out = redact(text)
    assert secret not in out
    assert "[REDACTED" in out


def test_name_is_kept_value_replaced():
    assert redact("WANDB_API_KEY=abc123") == "WANDB_API_KEY=[REDACTED]"
    assert redact('"password": "pw pw"') == '"password": "[REDACTED]"'
    assert redact("Authorization: Bearer abcdefgh12345678") == "Authorization: Bearer [REDACTED]"


def test_pem_block_across_lines():
    lines = [
        "before",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA7",
        "abcd==",
        "-----END RSA PRIVATE KEY-----",
        "after",
    ]
    out = redact_lines(lines)
    assert out[0] == "before" and out[-1] == "after"
    assert not any("MIIEpAIBAAKCAQEA7" in line for line in out)
    assert "MIIE" not in redact("-----BEGIN OPENSSH PRIVATE KEY-----\nMIIEcut off by the tail")


def test_extra_secrets_exact():
    assert redact("job for user-alice-42 done", extra_secrets=["user-alice-42", ""]) == "job for [REDACTED] done"


@pytest.mark.parametrize(
    "text",
    [
        "commit 0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",  # bare 40-hex: a git SHA, kept on purpose
        "HEAD is now at 9f2c1e7a4b3d5f6e8a9b0c1d2e3f4a5b6c7d8e9f fix lr",
        "KeyError: 'Experiment'",
        "full_key: data.train",
        "max_tokens: 512",
        "epoch 3 step 131 loss=nan lr=3e-4",
        "wandb: W&B API key is configured. Use wandb login --relogin to force relogin",
        "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 4.00 GiB total capacity)",
        'File "/home/u/skeleton/train.py", line 12, in <module>',
        "https://github.com/acme/exp/pull/7 and http://localhost:8080/#",
        "",
    ],
)
def test_ordinary_text_is_untouched(text):
    assert redact(text) == text


def test_redact_lines_empty():
    assert redact_lines([]) == []


def test_a_token_after_a_secret_name_is_redacted_once():
    assert redact("GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789 next") == "GITHUB_TOKEN=[REDACTED] next"


def test_code_that_names_a_token_is_not_a_secret():
    line = (
        "ValueError: Asking to pad but the tokenizer does not have a padding token. Please select a token "
        "to use as `pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` or add a new pad token via "
        "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
    )
    assert redact(line) == line
    assert redact("pad_token=None") == "pad_token=None"
    assert redact("password = hunter2") == "password = [REDACTED]"


def test_redact_value_redacts_strings_and_secret_named_keys_throughout():
    config = {
        "lr": 0.1,
        "db_password": "hunter2",
        "nested": [{"note": "token ghp_16C7e42F292c6912E7710c838347Ae178B4a"}],
        "user": "alice-42",
        "steps": 3,
    }
    assert redact_value(config, ["alice-42"]) == {
        "lr": 0.1,
        "db_password": "[REDACTED]",
        "nested": [{"note": "token [REDACTED]"}],
        "user": "[REDACTED]",
        "steps": 3,
    }


# -- masking in error text --------------------------------------------------------------------


def test_strip_credentials():
    text = "fatal: unable to access 'https://x-access-token:abc@github.com/o/r.git/': 403"
    assert strip_credentials(text) == "fatal: unable to access 'https://github.com/o/r.git/': 403"
    assert (
        strip_credentials("https://ghp_abc@github.com/o/r and ghp_abc", ("ghp_abc",))
        == "https://github.com/o/r and ***"
    )


def test_mask_replaces_only_the_known_secrets():
    assert (
        mask("key s3cr3t, again s3cr3t; WANDB_API_KEY=other", ["s3cr3t", ""])
        == "key ***, again ***; WANDB_API_KEY=other"
    )
    assert mask("nothing to hide") == "nothing to hide"


def test_first_line_of_a_client_error_masks_the_given_secrets():
    assert first_line("\n  401: bad key k-123 for user\nsecond line k-123", ["k-123"]) == "401: bad key *** for user"
    assert first_line("x" * 400) == "x" * 300
    assert exception_line(ValueError("")) == "ValueError"
    assert exception_line(RuntimeError("token k-123 refused"), ["k-123"]) == "token *** refused"
