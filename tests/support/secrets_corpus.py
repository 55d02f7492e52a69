"""The redaction corpus: secret formats that must never leave the process, and evidence that
must survive every output. Each entry is a carrier (text as a log, a model or a PR would hold
it) and what must (not) be seen in an output built from it.

All values are made up, in the real formats. `leaks` looks for any 12 characters of a secret,
also read through markdown and string escapes and with whitespace dropped (a PEM block collapsed
to one line is still a leak); `kept` looks for the evidence as a reader would see it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The bot's configured secrets (their environment variables), as `Settings.secrets()` returns them.
CONFIGURED_WANDB_KEY = "bae25c6abb49aac1a2385f295e7927668365f9e4"
CONFIGURED_WEBHOOK_SECRET = "Gh-hook_Q4m7/Zt2Kp9+ws"
CONFIGURED_WANDB_WEBHOOK_SECRET = "wandb-alert-7Rk2pQz9dLx3"

PEM_BODY = (
    "wX6Yq9sbOdrgVAMZ4vHMjLnaMumMo/XNsIjNJx5wbQmEy/rUtg9GpCXupguF/qgl",
    "7z6xWoxsSQAciwTV0GutdCD4tJlSgbP/iWqlHHS7oNvoLN4tdJnui271weaABHZK",
    "WHgwcfN9ksqiQVGQJYXoKB2LREV9tYgwjqrjbea0TiSrANKtlQnMxGzve4X8AZ8K",
)
OPENSSH_BODY = (
    "bUsMtfFQjfzSP+xFJC2GMyIJ3GRGug7RyJYzGg1U2Gy2CWO+eE1ni/kuAdNHQlbA",
    "Eh+mPRUI5tQqCZii6VVCvDZdFTz05WorUCtyYxxVEos+G8mhUpyKgzyAIfeuUVhi",
)
GCP_BODY = "84H9Imc1u0P3i336YeKDGmnxcnmsEYVmEHZlohSE+Zbukt3Bt/0us3jzaBcGslNY"
GCP_KEY_ID = "92647c8b6463781e3f51d90fcbc22ec0bd40a289"


@dataclass(frozen=True)
class Secret:
    name: str
    carrier: str
    needles: tuple[str, ...]  # the secret parts: none of them may be seen

    @property
    def one_line(self) -> str:
        """The carrier where a single line is needed (an HTTP header)."""
        return " ".join(self.carrier.split())


@dataclass(frozen=True)
class Evidence:
    name: str
    carrier: str
    keep: str  # must be seen as it is


def _s(name: str, carrier: str, *needles: str) -> Secret:
    assert all(n in carrier for n in needles), name
    return Secret(name, carrier, needles)


GHP = "ghp_" + "ErQHQwjyaxErPZDS3MoJaQNjCxkv5ndK0meG"
GHS = "ghs_" + "R0vRzZ1fb6d06QGofB8ChQBiIu4NJkS4dJkG"
GHO = "gho_" + "ErQHQwjyaxErPZDS3MoJaQNjCxkv5ndK0meG"[::-1]
GITHUB_PAT = "github_pat_" + "0fzMAQMEEMyIbPUf9mYQqw_8x3SyRthqpvxxGKZWGlby02BcHboRBcynXMgWJoleSrcBrFwMOUdGDxnvsD"
ANTHROPIC = (
    "sk-ant-api03-" + "89Ev7UxyCaIRwEbfFoUtdPJpD9-TH4u5LfJQ4BKGdadqI1rEz38hHf13lZzSVXuctdej1zWmTyNI-pBYFj0TPkQslNNx3"
)
OPENAI_PROJECT = "sk-proj-" + "UwdA-4-whR6EPmCaUUJz3LCsQu7XF66gD0Y4gnNScP_UNvr9CrG_f2UK0KXPsqHeW02HR0W_XZxvAGoIgTNrNBdN"
OPENAI_LEGACY = "sk-" + "Sg91RYBJz9MxWe16iwdogBfZd1a7pbhRRKN79U9PV28bLoL7"
AWS_KEY_ID = "AKIA" + "4N3V18UPZFVDXJTH"
AWS_SECRET = "/rJbzDp93RZORW/RyUiDRXIq4JGR1np+wUtJWQNV"
WANDB_KEY = "fceecb867fabc94029c9f4da58dd141e397563cf"
WANDB_LOCAL = "local-" + "dba1909a41a763225da81d7baa1af672dba1909a"
BEARER = "CM0J~YkfKUKSkpfositr_vwTCZcsK66P"
BASIC = "dXNlcjpzM2NyM3QtcGFzc3dvcmQtOTk="
SLACK_BOT = "xoxb-" + "2481357924-5719273645018-Wk0qWasBWWBnk9b7NwwsgNFx"
SLACK_USER = "xoxp-" + "2481357924-5719273645018-5719273645019-dba1909a41a763225da81d7baa1af672"
SLACK_APP = "xapp-1-" + "A0G45K6M38YVM-5719273645020-45fe436d6582afe2dc655425a517ff452e74f487882c580d1e46d510034c962e"
SLACK_HOOK_PATH = "T024BE7LD/B08M1NQ3X2Y/P6T11I0fGlYseYk6zb1v9ajg"
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0."
    "eyJzdWIiOiJib3QiLCJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJleHAiOjE3MzAwMDAwMDB9."
    "cnR2EIyh1rAbDLngscVlVAw3plkT9xrw_R2mxtN4ohd"
)
URL_SLASH_PASSWORD = "p4ss/w0rd+Kx9"
URL_AT_COLON_PASSWORD = "s3cr@t:w1th/all#Qz"
REDIS_PASSWORD = "Zq8m/PLx7vN2"
HF = "hf_" + "EddGUpXuTatkIAOAevhcFRgdEPBXLtPHEF"
PYPI = (
    "pypi-AgEIcHlwaS5vcmc" + "2F8Zqza7QvD9JjAsxcv_2C03uwS_Ow4wcnFG0K5R63iappeszhdp3X4d5XfwShzZnIJWyYAOFnuA-6yuohls3WVpX"
)
NPM = "npm_" + "X3LAht27hSL19grBEJRjPpu9Am58TBlRRl2I"
GITLAB = "glpat-" + "FHNL6G_qIszDzPbbp66w"
STRIPE = "sk_live_" + "xEVNMPZVhtI0i0GBUTzAFKxuxDTtP5VNwN4HaD8lKPrCbwIGUiAPIY8xZkj9RNVuYfGKBoi5tTLrG"
GOOGLE = "AIza" + "J4TCnPku5p39er8_2XCED7M0HpZXReAkbHl"
SENDGRID = "SG." + "vDnf9DJcIa2UybROfdS16_" + "." + "c63GXtd4VY0qURqbVBhHMCnJubPgirGWcj0UGmCG7j2"
DISCORD_TOKEN = "UvPXg_e3LobTmTNHgLDRM1lZJSmGk_nkaR7ei5aOyQiq8u5R8WQw3dvoDjUWglN64DoH"
DATABRICKS = "dapi" + "eb8c159368946b77b1d3134ff8af8787"
REPLICATE = "r8_" + "gY7e7Qn7Hl3IuwvBayiLMcFx3mC6r0ziiKEXS"
DB_PASSWORD = "Tr0ub4dor&3-horse"
CLIENT_SECRET = "GOCSPX-" + "6xwONnonL9oSncxQSLKAzu3Nos1x"
FLAG_PASSWORD = "hunter2-Correct-Battery"

SECRETS: tuple[Secret, ...] = (
    _s("github-classic-pat", f"remote: Invalid username or token {GHP}. Password auth is not supported.", GHP),
    _s("github-fine-grained-pat", f"Using GITHUB_PAT {GITHUB_PAT} for the push", GITHUB_PAT),
    _s(
        "github-installation-token-in-url",
        f"fatal: unable to access 'https://x-access-token:{GHS}@github.com/acme/exp.git/': 403",
        GHS,
    ),
    _s("github-oauth", f"oauth token {GHO} expired", GHO),
    _s("anthropic", f"anthropic.AuthenticationError: invalid x-api-key {ANTHROPIC}", ANTHROPIC),
    _s("openai-project", f"openai.AuthenticationError: Incorrect API key provided: {OPENAI_PROJECT}.", OPENAI_PROJECT),
    _s("openai-legacy", f"client = OpenAI(api_key={OPENAI_LEGACY!r})", OPENAI_LEGACY),
    _s("aws-access-key-id", f"botocore: credentials found for {AWS_KEY_ID} in environment", AWS_KEY_ID),
    _s("aws-secret-by-name", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    _s("wandb-api-key-by-name", f"export WANDB_API_KEY={WANDB_KEY}", WANDB_KEY),
    _s("wandb-login", f"$ wandb login --relogin {WANDB_KEY}", WANDB_KEY),
    _s("wandb-local-key", f"wandb: using server key {WANDB_LOCAL}", WANDB_LOCAL),
    _s("netrc", f"machine api.wandb.ai\n  login user\n  password {WANDB_KEY}", WANDB_KEY),
    _s("bearer-header", f"GET /v1/models -H 'Authorization: Bearer {BEARER}' -> 401", BEARER),
    _s("basic-auth-header", f"proxy said 407; sent Authorization: Basic {BASIC}", BASIC),
    _s(
        "pem-rsa-private-key",
        "key file:\n-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(PEM_BODY)
        + "\n-----END RSA PRIVATE KEY-----\nloaded",
        *PEM_BODY,
    ),
    _s(
        "pem-openssh-cut-off",
        "Traceback: bad key\n-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(OPENSSH_BODY),
        *OPENSSH_BODY,
    ),
    _s("password-by-name", f"DB_PASSWORD={DB_PASSWORD} python train.py", DB_PASSWORD),
    _s(
        "client-secret-json",
        f'{{"client_id": "1234-abc.apps.googleusercontent.com", "client_secret": "{CLIENT_SECRET}"}}',
        CLIENT_SECRET,
    ),
    _s("password-flag", f"launch.sh --db-password {FLAG_PASSWORD} --epochs 3", FLAG_PASSWORD),
    _s("configured-webhook-secret", f"HMAC key was {CONFIGURED_WEBHOOK_SECRET} (len 22)", CONFIGURED_WEBHOOK_SECRET),
    _s("configured-wandb-key-bare", f"key {CONFIGURED_WANDB_KEY} rejected", CONFIGURED_WANDB_KEY),
    _s("slack-bot-token", f"slack_sdk.errors.SlackApiError: invalid_auth for {SLACK_BOT}", SLACK_BOT),
    _s("slack-user-token", f"posting as {SLACK_USER}", SLACK_USER),
    _s("slack-app-token", f"socket mode with {SLACK_APP} failed", SLACK_APP),
    _s("slack-webhook-url", f"alert sent to https://hooks.slack.com/services/{SLACK_HOOK_PATH}", SLACK_HOOK_PATH),
    _s("jwt", f"jwt.exceptions.ExpiredSignatureError: Signature has expired for {JWT}", JWT),
    _s(
        "url-credentials-slash",
        f"sqlalchemy: could not connect to postgres://admin:{URL_SLASH_PASSWORD}@db.internal:5432/exps",
        URL_SLASH_PASSWORD,
    ),
    _s(
        "url-credentials-at-colon",
        f"pip install -i https://deploy:{URL_AT_COLON_PASSWORD}@pypi.example.com/simple toyaug",
        URL_AT_COLON_PASSWORD,
    ),
    _s("url-credentials-no-user", f"redis.exceptions: redis://:{REDIS_PASSWORD}@cache.local:6379/0", REDIS_PASSWORD),
    _s(
        "gcp-service-account-json",
        '{"type": "service_account", "project_id": "exp-123", "private_key_id": "'
        + GCP_KEY_ID
        + '", "private_key": "-----BEGIN PRIVATE KEY-----\\n'
        + GCP_BODY
        + '\\n-----END PRIVATE KEY-----\\n", "client_email": "bot@exp-123.iam.gserviceaccount.com"}',
        GCP_KEY_ID,
        GCP_BODY,
    ),
    _s("gcp-private-key-id", f'"private_key_id": "{GCP_KEY_ID}",', GCP_KEY_ID),
    _s("huggingface", f"huggingface_hub.errors: 401 for token {HF}", HF),
    _s("pypi", f"twine upload -u __token__ -p {PYPI} dist/*", PYPI),
    _s("npm", f"//registry.npmjs.org/:_authToken={NPM}", NPM),
    _s("gitlab", f"git clone with {GITLAB}", GITLAB),
    _s("stripe", f"stripe.api_key = {STRIPE}", STRIPE),
    _s("google-api-key", f"maps key {GOOGLE} over quota", GOOGLE),
    _s("sendgrid", f"mail via {SENDGRID}", SENDGRID),
    _s(
        "discord-webhook-url",
        f"notify https://discord.com/api/webhooks/1234567890123456789/{DISCORD_TOKEN}",
        DISCORD_TOKEN,
    ),
    _s("databricks", f"DATABRICKS host ok, token {DATABRICKS} invalid", DATABRICKS),
    _s("replicate", f"replicate.Client(api_token) with {REPLICATE}", REPLICATE),
)

EVIDENCE: tuple[Evidence, ...] = (
    Evidence("pad-token", "tokenizer config: pad_token = '</s>'", "pad_token = '</s>'"),
    Evidence("eos-token", 'eos_token: "<|endoftext|>" not in vocab', 'eos_token: "<|endoftext|>"'),
    Evidence("unk-token", "unk_token='[UNK]' mask_token=\"<mask>\"", "unk_token='[UNK]' mask_token=\"<mask>\""),
    Evidence(
        "pad-token-code", "fix: tokenizer.pad_token = tokenizer.eos_token", "tokenizer.pad_token = tokenizer.eos_token"
    ),
    Evidence("dataset-key", "KeyError with dataset_key=imagenet-2012-train-v2", "dataset_key=imagenet-2012-train-v2"),
    Evidence("sort-key", "sort_key: created_at, cache_key: 5d41402abc4b2a76b9719d911017c592", "sort_key: created_at"),
    Evidence(
        "cache-key-md5", "cache_key: 5d41402abc4b2a76b9719d911017c592", "cache_key: 5d41402abc4b2a76b9719d911017c592"
    ),
    Evidence("full-key", "omegaconf: full_key: data.train.batch_size", "full_key: data.train.batch_size"),
    Evidence(
        "git-sha",
        "HEAD is now at 3f2a9c1e0b7d4a5f6e8c9b0a1d2e3f4a5b6c7d8e Experiment: lr 25",
        "3f2a9c1e0b7d4a5f6e8c9b0a1d2e3f4a5b6c7d8e",
    ),
    Evidence(
        "sha256-digest",
        "image sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 pulled",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ),
    Evidence(
        "wandb-run-dir",
        "wandb: Run data is saved locally in /work/wandb/run-20250304_050607-3kq7z9xw",
        "run-20250304_050607-3kq7z9xw",
    ),
    Evidence(
        "wandb-run-url",
        "wandb: View run at https://wandb.ai/my-team/my-project/runs/3kq7z9xw",
        "https://wandb.ai/my-team/my-project/runs/3kq7z9xw",
    ),
    Evidence("wandb-run-path", "run_path: my-team/my-project/3kq7z9xw", "my-team/my-project/3kq7z9xw"),
    Evidence("bot-run-id", "relaunched as run_id=r-1a2b3c4d", "run_id=r-1a2b3c4d"),
    Evidence("max-tokens", "max_tokens=4096 num_tokens: 2048", "max_tokens=4096 num_tokens: 2048"),
    Evidence("keyerror-api-key", "KeyError: 'api_key'", "KeyError: 'api_key'"),
    Evidence(
        "s3-checkpoint", "checkpoint s3://ml-bucket/ckpt/step-1000.pt missing", "s3://ml-bucket/ckpt/step-1000.pt"
    ),
    Evidence(
        "url-with-port",
        "GET https://registry.npmjs.org:443/@types/node 404",
        "https://registry.npmjs.org:443/@types/node",
    ),
    Evidence("ssh-remote", "remote: ssh://git@github.com/acme/exp.git", "ssh://git@github.com/acme/exp.git"),
    Evidence(
        "uuid-key",
        "request_key: 123e4567-e89b-12d3-a456-426614174000",
        "request_key: 123e4567-e89b-12d3-a456-426614174000",
    ),
    Evidence("interpolated-secret", "api_key: ${WANDB_API_KEY} left unresolved", "api_key: ${WANDB_API_KEY}"),
    Evidence("sorted-key", "sorted(runs, key=len) failed", "sorted(runs, key=len)"),
    Evidence(
        "shape-error",
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x512 and 256x10)",
        "mat1 and mat2 shapes cannot be multiplied (64x512 and 256x10)",
    ),
)

_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_STRING_ESCAPE = re.compile(r"\\[nrt]")
WINDOW = 12


def readable(text: str) -> str:
    """`text` as a reader sees it: markdown escapes, string escapes and zero-width spaces gone."""
    return _STRING_ESCAPE.sub(" ", _ESCAPE.sub(r"\1", text.replace("\u200b", "")))


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text)


def leaks(output: str, secret: Secret) -> list[str]:
    """The parts of `secret` seen in `output` (empty: no leak)."""
    seen = (_compact(output), _compact(readable(output)))
    found = []
    for needle in secret.needles:
        n = _compact(needle)
        windows = [n] if len(n) <= WINDOW else [n[i : i + WINDOW] for i in range(len(n) - WINDOW + 1)]
        found += [w for w in windows if any(w in s for s in seen)][:1]
    return found


def kept(output: str, evidence: Evidence) -> bool:
    """Whether the evidence is in `output` as it was, read as a reader would."""
    return " ".join(evidence.keep.split()) in " ".join(readable(output).split())
