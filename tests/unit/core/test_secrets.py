"""Secret handling in one place: redaction of each secret kind (ordinary text stays as it was),
masking of known secrets and URL credentials in error text."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot.core.errors import exception_line, first_line
from bot.core.secrets import Redactor, mask, redact, redact_lines, redact_value, redacted_logs, strip_credentials
from bot.loop.report import inline

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


# -- the Redactor: the last step of every output -------------------------------------------------

GHP = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"


def test_a_token_escaped_for_markdown_is_still_redacted_and_leaves_no_backslash():
    escaped = inline(f"the LLM said: use {GHP} and github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz")
    assert "ghp\\_" in escaped, "the premise: inline() escapes the underscore"
    out = Redactor().text(escaped)
    assert out == "the LLM said: use [REDACTED] and [REDACTED]"


def test_a_token_after_a_zero_width_space_or_a_string_escape_is_redacted():
    assert Redactor().text("a@\u200bxoxb-2481357924-5719273645018-Wk0qWasBWWBnk9b") == "a@\u200b[REDACTED]"
    assert Redactor().text(repr(f"line one\n{GHP}")) == "'line one\\n[REDACTED]'"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("postgres://admin:p4ss/w0rd+Kx9@db.internal:5432/exps", "postgres://admin:[REDACTED]@db.internal:5432/exps"),
        (
            "https://deploy:s3cr@t:w1th/all#Qz@pypi.example.com/simple",
            "https://deploy:[REDACTED]@pypi.example.com/simple",
        ),
        ("redis://:Zq8m/PLx7vN2@cache.local:6379/0", "redis://:[REDACTED]@cache.local:6379/0"),
        (
            "alert to https://hooks.slack.com/services/T024BE7LD/B08M1NQ3X2Y/P6T11I0fGlYs",
            "alert to https://hooks.slack.com/services/[REDACTED]",
        ),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3QifQ.cnR2EIyh1rAbDLngscVlVA", "jwt [REDACTED]"),
        ("as xoxb-2481357924-5719273645018-Wk0qWasBWWBnk9b7", "as [REDACTED]"),
        ("with xapp-1-A0G45K6M38YVM-5719273645020-45fe436d65", "with [REDACTED]"),
        ("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", "[REDACTED]"),
        ("-p pypi-AgEIcHlwaS5vcmc2F8Zqza7QvD9JjAsxcv_2C03uwS_Ow4wcnFG0K5R63iappes", "-p [REDACTED]"),
        (
            "//registry.npmjs.org/:_authToken=npm_X3LAht27hSL19grBEJRjPpu9Am58TBlRRl2I",
            "//registry.npmjs.org/:_authToken=[REDACTED]",
        ),
        ("Root cause: DB_PASSWORD=Tr0ub4dor&3-horse python", "Root cause: DB_PASSWORD=[REDACTED] python"),
        ("launch --db-password hunter2-Correct --epochs 3", "launch --db-password [REDACTED] --epochs 3"),
        ("wandb.login(key='fceecb867fabc94029c9f4da58dd141e397563cf')", "wandb.login(key='[REDACTED]')"),
    ],
)
def test_new_formats_are_redacted_keeping_what_surrounds_them(text, expected):
    assert Redactor().text(text) == expected


def test_a_gcp_service_account_key_is_redacted_as_json_and_as_escaped_json():
    key = {
        "type": "service_account",
        "private_key_id": "92647c8b6463781e3f51d90fcbc22ec0bd40a289",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
        "client_email": "bot@exp-123.iam.gserviceaccount.com",
    }
    for text in (json.dumps(key), json.dumps(json.dumps(key))):
        out = Redactor().text(text)
        assert "92647c8b" not in out and "MIIEvQ" not in out, out
        assert "bot@exp-123.iam.gserviceaccount.com" in out and "service_account" in out
    assert Redactor().value(key)["private_key_id"] == "[REDACTED]"


@pytest.mark.parametrize(
    "text",
    [
        "pad_token = '</s>'",
        'eos_token: "<|endoftext|>"',
        "bos_token=<s> unk_token='[UNK]' pad_token: [PAD]",
        "dataset_key=imagenet-2012-train-v2",
        "sort_key: created_at",
        "cache_key: 5d41402abc4b2a76b9719d911017c592",
        "cache_key=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "request_key: 123e4567-e89b-12d3-a456-426614174000",
        "sorted(runs, key=len)",
        "api_key: ${WANDB_API_KEY}",
        "api_key=os.environ['WANDB_API_KEY']",
        "private_key_path: /etc/bot/key.pem",
        "GET https://registry.npmjs.org:443/@types/node and http://localhost:8080/@me",
        "ssh://git@github.com/acme/exp.git and git@github.com:acme/exp.git",
        "wandb: View run at https://wandb.ai/my-team/my-project/runs/3kq7z9xw",
        "password: [REDACTED] token=[REDACTED PRIVATE KEY]",
    ],
)
def test_evidence_is_kept(text):
    assert Redactor().text(text) == text


def test_configured_secrets_are_redacted_verbatim_longest_first():
    redactor = Redactor(["abc-secret-1", "abc-secret-12", " ", ""])
    assert redactor.text("a abc-secret-12 b abc-secret-1 c") == "a [REDACTED] b [REDACTED] c"
    assert Redactor.from_settings(None).secrets == ()


def test_redaction_is_idempotent():
    text = f"GITHUB_TOKEN={GHP}\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    once = Redactor().text(text)
    assert Redactor().text(once) == once == "GITHUB_TOKEN=[REDACTED]\n[REDACTED PRIVATE KEY]"


def test_value_redacts_keys_too():
    assert Redactor().value({GHP: 1, "n": [GHP], "ok": (1, 2)}) == {"[REDACTED]": 1, "n": ["[REDACTED]"], "ok": [1, 2]}


def test_strip_credentials_takes_a_password_with_slashes():
    assert strip_credentials("fatal: 'https://u:pa/ss@github.com/o/r.git'") == "fatal: 'https://github.com/o/r.git'"
    assert strip_credentials("http://localhost:8080/@me") == "http://localhost:8080/@me"


# -- logs -------------------------------------------------------------------------------------------


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.secrets")
    logger.addHandler(handler)
    yield logger, stream
    logger.removeHandler(handler)


def test_every_log_record_made_inside_the_block_is_redacted(captured):
    logger, stream = captured
    before = logging.getLogRecordFactory()
    with redacted_logs(Redactor(["hook-secret-1"])):
        logger.warning("token %s and %s", GHP, "hook-secret-1")
        try:
            raise ValueError(f"bad {GHP}")
        except ValueError:
            logger.exception("failed with %d", 3)
        logger.warning("bad args %d", "x")  # a broken format does not lose the record
    assert logging.getLogRecordFactory() is before, "logging is restored after the block"
    logger.warning("after %s", "hook-secret-1")
    text = stream.getvalue()
    assert GHP not in text and text.count("hook-secret-1") == 1
    assert "token [REDACTED] and [REDACTED]" in text and "ValueError: bad [REDACTED]" in text
    assert "failed with 3" in text and "bad args %d" in text


def test_nested_blocks_do_not_stack_and_restore_in_order(captured):
    logger, stream = captured
    with redacted_logs(Redactor(["outer-secret"])):
        with redacted_logs(Redactor(["inner-secret"])):
            logger.warning("%s %s", "outer-secret", "inner-secret")
        logger.warning("%s %s", "outer-secret", "inner-secret")
    assert stream.getvalue().splitlines() == ["outer-secret [REDACTED]", "[REDACTED] inner-secret"]
