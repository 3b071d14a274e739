# The Audit API mock in a container: python:3.12-slim, a non-root user, listening on every
# interface inside the container, configured by the same MOCKSERVER_* variables as the command.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MOCKSERVER_HOST=0.0.0.0 \
    MOCKSERVER_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY openapi ./openapi
COPY mockserver ./mockserver
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home mock

USER mock
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('MOCKSERVER_PORT', '8080') + '/_mock/health', timeout=2)"]
CMD ["mockserver"]
