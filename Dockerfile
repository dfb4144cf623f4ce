FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends gettext make nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt package.json package-lock.json ./
RUN pip install --no-cache-dir -r requirements.txt && npm ci --ignore-scripts --no-audit --no-fund
COPY . .
# Settings need a key to load; these build-time values never reach the running container.
RUN make assets && DJANGO_SECRET_KEY=build-time-only-key-never-in-the-running-container OPSPORTAL_SECRETS_KEYS=YnVpbGRidWlsZGJ1aWxkYnVpbGRidWlsZGJ1aWxkMTI= \
    python manage.py compilemessages -v 0
# The metrics directory the web server and the worker share (a volume in docker-compose.yml).
RUN mkdir -p /var/lib/opsportal/metrics && chown nobody /var/lib/opsportal/metrics
USER nobody
EXPOSE 8000
