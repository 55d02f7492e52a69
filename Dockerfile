# fix-and-relaunch's webhook server. Build: docker build -t fix-and-relaunch .
# Run:   docker run -p 8080:8080 -v fix-and-relaunch-state:/var/lib/fix-and-relaunch fix-and-relaunch
# (compose.yaml does both). The state volume must persist: see the README's "Deploy".
FROM python:3.11-slim

# git: the bot clones, commits and pushes; bubblewrap: the sandbox repository code runs in.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git bubblewrap ca-certificates \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FIX_AND_RELAUNCH_STATE_DIR=/var/lib/fix-and-relaunch \
    FIX_AND_RELAUNCH_LOG_FORMAT=json \
    PORT=8080

WORKDIR /opt/fix-and-relaunch
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --no-cache-dir .

RUN useradd --system --uid 10001 --create-home --home-dir /home/bot bot \
    && mkdir -p /var/lib/fix-and-relaunch \
    && chown bot:bot /var/lib/fix-and-relaunch
USER bot
VOLUME ["/var/lib/fix-and-relaunch"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"

CMD fix-and-relaunch serve --host 0.0.0.0 --port ${PORT:-8080}
