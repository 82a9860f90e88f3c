# One image for the worker, the web service and the one-shot simulator (docker-compose.yml
# picks the command). Python 3.11, the package installed without its test extras.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY antifraud antifraud
COPY streams streams
COPY detectors detectors
COPY simulators simulators
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home-dir /var/lib/antifraud --create-home antifraud
USER antifraud
ENV ANTIFRAUD_DATA_DIR=/var/lib/antifraud
# 6066: the worker's /metrics; 8000: `antifraud web`.
EXPOSE 6066 8000
CMD ["antifraud", "worker", "-l", "info"]
