#!/usr/bin/env bash
# LocalStack without Docker: localstack-core in a Python 3.12 virtualenv (localstack/.venv), SQS + SNS + S3 on
# 127.0.0.1:4599 (override with LOCALSTACK_PORT). Runs in the foreground; Ctrl-C stops it.
#
#   bash localstack/run-host.sh          # then, in another shell:
#   .venv/bin/python -m consumer.ops.init --endpoint-url http://127.0.0.1:4599
#   F5_WORKER_TEST_LOCALSTACK_URL=http://127.0.0.1:4599 .venv/bin/python -m pytest tests/scenarios/test_worker_flow.py -q
#
# Why these pins (measured, see localstack/README.md): localstack-core 4.14.0 and later use
# `warnings.deprecated` (Python >= 3.13), while 4.13.1 runs on 3.12 with cbor2<6, pyopenssl<25, cryptography<45.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
port=${LOCALSTACK_PORT:-4599}

is_312() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; }
py=""
candidates=("${PYTHON312:-python3.12}")
if command -v pyenv >/dev/null 2>&1; then  # pyenv shims refuse versions that are installed but not selected
  candidates+=("$(pyenv root)"/versions/3.12*/bin/python3.12)
fi
for candidate in "${candidates[@]}"; do
  if is_312 "$candidate"; then py=$candidate; break; fi
done
if [ -z "$py" ]; then
  echo "run-host.sh: needs Python 3.12 (tried: ${candidates[*]})." >&2
  echo "  Install it (pyenv install 3.12, apt-get install python3.12-venv, ...) or set PYTHON312=/path/to/python3.12," >&2
  echo "  or use Docker instead: docker compose -f localstack/docker-compose.yml up" >&2
  exit 3
fi

stamp="$venv/.f5-worker-localstack-runtime-4.13.1"
if [ ! -f "$stamp" ]; then
  echo "run-host.sh: creating $venv (localstack-core 4.13.1, about a minute)" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet 'localstack-core[runtime]==4.13.1' 'cbor2<6' 'pyopenssl<25' 'cryptography<45' \
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
export SERVICES=${LOCALSTACK_SERVICES:-sqs,sns,s3}  # tests/unit/ops/test_infra.py deploys the template when cloudformation,iam,sts are added
# State and LocalStack's "filesystem" live under /tmp, not in the venv; its init hooks come from init/ready.d,
# as in the container, run with the repository's .venv (which has everything consumer.ops.init needs).
export LOCALSTACK_VOLUME_DIR=${LOCALSTACK_VOLUME_DIR:-${TMPDIR:-/tmp}/f5-worker-localstack}
export FILESYSTEM_ROOT="$LOCALSTACK_VOLUME_DIR/filesystem"
mkdir -p "$FILESYSTEM_ROOT/etc/localstack/init"
ln -sfn "$here/init/ready.d" "$FILESYSTEM_ROOT/etc/localstack/init/ready.d"
repo=$(cd "$here/.." && pwd)
if [ -x "$repo/.venv/bin/python" ]; then
  export F5_WORKER_SRC="$repo" F5_WORKER_INIT_PYTHON="$repo/.venv/bin/python"
  export F5_WORKER_INIT_ENDPOINT="http://127.0.0.1:$port"
else
  echo "run-host.sh: no $repo/.venv (bash scripts/setup): the init hook will not create the resources" >&2
fi
echo "run-host.sh: LocalStack on http://127.0.0.1:$port (SERVICES=$SERVICES)" >&2
exec "$venv/bin/python" -m localstack.runtime.main
