FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY antifraud antifraud
COPY streams streams
COPY detectors detectors
COPY simulators simulators
RUN pip install --no-cache-dir .
ENV ANTIFRAUD_DATA_DIR=/var/lib/antifraud
CMD ["antifraud", "worker", "-l", "info"]
