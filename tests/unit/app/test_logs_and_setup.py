"""The server's log formats and probe filter, the settings the operator adds, and the set-up
page's parts (the manifest from app.yml, where the form posts, the stored credentials)."""

from __future__ import annotations

import json
import logging
import stat
import sys
from unittest import mock

import pytest
import yaml

from bot.app import logs, setup
from bot.core.errors import BadInput
from bot.core.settings import Settings, github_web_url
from tests.support.paths import REPO_ROOT


def record(message: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("bot.app.server", logging.WARNING, __file__, 1, message, (), exc_info)


def test_json_lines_carry_time_level_logger_message_and_traceback():
    line = logs.formatter("json").format(record("refused\nwith a break", exc=True))
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "bot.app.server"
    assert data["message"] == "refused\nwith a break" and "ValueError: boom" in data["exception"]
    assert data["time"].endswith("+00:00")


def test_text_lines_stay_one_line():
    line = logs.formatter("text").format(record("a\nb", exc=True))
    assert "\n" not in line and "WARNING bot.app.server: a\\nb" in line


@pytest.mark.parametrize(
    ("path", "status", "logged"), [("/healthz", 200, False), ("/healthz", 503, True), ("/", 200, True)]
)
def test_health_probes_are_not_access_logged(path, status, logged):
    logger = mock.Mock()
    access = logs.QuietProbesAccessLogger(logger, logs.AccessLogger.LOG_FORMAT)
    request = mock.Mock(path=path, headers={}, remote="127.0.0.1")
    response = mock.Mock(status=status, body_length=2, headers={})
    access.log(request, response, 0.01)
    assert logger.info.called is logged


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    ],
)
def test_the_web_url_follows_the_api_url(api, web):
    assert github_web_url(api) == web
    assert Settings.from_env({"GITHUB_API_URL": api, "HOME": "/h"}).github_web_url == web
    assert (
        Settings.from_env({"GITHUB_API_URL": api, "GITHUB_WEB_URL": "https://x/", "HOME": "/h"}).github_web_url
        == "https://x"
    )


def test_an_unknown_log_format_is_refused():
    with pytest.raises(BadInput, match="FIX_AND_RELAUNCH_LOG_FORMAT"):
        Settings.from_env({"FIX_AND_RELAUNCH_LOG_FORMAT": "xml", "HOME": "/h"})


def test_the_registered_app_is_read_at_start_up_unless_the_environment_names_one(tmp_path):
    conversion = {"id": 99, "pem": "-----BEGIN KEY-----", "webhook_secret": "s" * 40, "html_url": "https://x/apps/a"}
    folder = setup.store_credentials(tmp_path, conversion)
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o600}
    env = {"FIX_AND_RELAUNCH_STATE_DIR": str(tmp_path)}
    settings = Settings.from_env(env)
    assert (settings.github_app_id, settings.github_private_key, settings.github_webhook_secret) == (
        "99",
        "-----BEGIN KEY-----",
        "s" * 40,
    )
    assert "s" * 40 in settings.secrets()
    own = Settings.from_env({**env, "GITHUB_APP_ID": "5", "GITHUB_WEBHOOK_SECRET": "w" * 20})
    assert (own.github_app_id, own.github_webhook_secret, own.github_private_key) == ("5", "w" * 20, None)


def test_the_manifest_is_app_yml_pointed_at_this_server():
    data = setup.manifest("https://bot.example.com")
    shipped = yaml.safe_load((REPO_ROOT / "app.yml").read_text())
    assert data["default_events"] == shipped["default_events"]
    assert data["default_permissions"] == shipped["default_permissions"]
    assert data["hook_attributes"]["url"] == "https://bot.example.com/webhooks/github"
    assert data["redirect_url"] == "https://bot.example.com/setup/callback"


def test_the_form_posts_to_the_user_or_an_organisation_on_github_or_enterprise():
    enterprise = Settings(github_web_url="https://ghe.example.com")
    assert setup.form_action(Settings(), None, "s1") == "https://github.com/settings/apps/new?state=s1"
    assert (
        setup.form_action(enterprise, "acme", "s2")
        == "https://ghe.example.com/organizations/acme/settings/apps/new?state=s2"
    )
