# The hub image: hub (gunicorn), router (python -m routing.router), Celery
# worker and beat all run from it; k8s/ picks the command per Deployment.
#   docker build -t registry.example.org/hub:0.1.0 .
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/hub/venv \
    PATH=/opt/hub/venv/bin:$PATH \
    HUB_DATA_DIR=/var/lib/hub

# A fixed numeric uid, so Kubernetes can check runAsNonRoot (k8s/ uses 10001).
RUN groupadd --system --gid 10001 hub \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin hub

RUN python -m venv "$VIRTUAL_ENV"
WORKDIR /opt/hub/app

# Runtime requirements only: everything above requirements.txt's
# "# tests and tooling" line (pytest, playwright, ruff stay out of the image).
COPY requirements.txt ./
RUN sed '/^# tests and tooling/,$d' requirements.txt > /tmp/requirements-runtime.txt \
 && pip install -r /tmp/requirements-runtime.txt \
 && rm /tmp/requirements-runtime.txt

COPY manage.py ./
COPY hubsite ./hubsite
COPY accounts ./accounts
COPY servers ./servers
COPY routing ./routing
COPY scheduler ./scheduler
COPY templates ./templates
COPY static ./static

# Static files into HUB_DATA_DIR/static, at build time: the root filesystem is
# read-only in k8s/. Throwaway secrets and a Redis URL keep settings.py from
# generating secret files or broker folders into the image. Then bytecode for
# plain and -O runs (the router re-execs itself with -O), as nothing can write
# .pyc files at run time.
RUN HUB_SECRET_KEY=collectstatic-only HUB_ROUTER_TOKEN=collectstatic-only \
        HUB_REDIS_URL=redis://unused:6379/0 \
        python manage.py collectstatic --noinput --verbosity 0 \
 && python -m compileall -q -o 0 -o 1 /opt/hub/app "$VIRTUAL_ENV"/lib

USER 10001:10001
EXPOSE 8081 8000 9090
CMD ["gunicorn", "hubsite.wsgi", "--bind=0.0.0.0:8081", "--worker-class=gthread", "--workers=2", "--threads=16", "--timeout=0", "--access-logfile=-"]
