# The backend image: `docker build -t opsconsole:0.1.0 .` (deploy/backend.yaml runs it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY opsconsole ./opsconsole
COPY deploy ./deploy
RUN pip install '.[postgres]' && rm -rf /src \
    && useradd --system --uid 10001 --user-group --no-create-home --home-dir /tmp opsconsole

USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["opsconsole"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
