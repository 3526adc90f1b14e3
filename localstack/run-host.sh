#!/usr/bin/env bash
# LocalStack without Docker: localstack-core in a Python 3.12 virtualenv (localstack/.venv), SQS + SNS + S3 on
# 127.0.0.1:4599 (override with LOCALSTACK_PORT). Runs in the foreground; Ctrl-C stops it.
#
#   bash localstack/run-host.sh          # then, in another shell:
#   .venv/bin/python -m consumer.init_resources --endpoint-url http://127.0.0.1:4599
#   F5_WORKER_TEST_LOCALSTACK_URL=http://127.0.0.1:4599 .venv/bin/python -m pytest tests/test_worker_flow.py -q
#
# Why these pins (measured, see localstack/README.md): localstack-core 4.14.0 and later use
# `warnings.deprecated` (Python >= 3.13), while 4.13.1 runs on 3.12 with cbor2<6, pyopenssl<25, cryptography<45.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
port=${LOCALSTACK_PORT:-4599}
py=${PYTHON312:-python3.12}

if ! command -v "$py" >/dev/null 2>&1 || ! "$py" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
  echo "run-host.sh: needs Python 3.12 ('$py' not found or not 3.12)." >&2
  echo "  Install it (pyenv install 3.12, apt-get install python3.12-venv, ...) or set PYTHON312=/path/to/python3.12," >&2
  echo "  or use Docker instead: docker compose -f localstack/docker-compose.yml up" >&2
  exit 3
fi

stamp="$venv/.f5-worker-localstack-4.13.1"
if [ ! -f "$stamp" ]; then
  echo "run-host.sh: creating $venv (localstack-core 4.13.1, about a minute)" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet 'localstack-core==4.13.1' 'cbor2<6' 'pyopenssl<25' 'cryptography<45' \
    service_identity
  touch "$stamp"
fi

export OVERRIDE_IN_DOCKER=0             # not in a container: no Docker-only code paths
export GATEWAY_SERVER=hypercorn
export GATEWAY_LISTEN="127.0.0.1:$port" # else it binds 0.0.0.0
export LOCALSTACK_HOST="127.0.0.1:$port"
export SQS_ENDPOINT_STRATEGY=path       # queue URLs http://127.0.0.1:PORT/<account>/<name>
export S3_SKIP_SIGNATURE_VALIDATION=0   # check presigned URL signatures (else tampered URLs are accepted)
export SKIP_SSL_CERT_DOWNLOAD=1
export DNS_ADDRESS=0
export DISABLE_EVENTS=1
export SERVICES=sqs,sns,s3
export LOCALSTACK_VOLUME_DIR=${LOCALSTACK_VOLUME_DIR:-${TMPDIR:-/tmp}/f5-worker-localstack}
mkdir -p "$LOCALSTACK_VOLUME_DIR"
echo "run-host.sh: LocalStack on http://127.0.0.1:$port (SERVICES=$SERVICES)" >&2
exec "$venv/bin/python" -m localstack.runtime.main
