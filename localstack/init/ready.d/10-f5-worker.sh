#!/usr/bin/env bash
# LocalStack init hook (stage READY): creates f5-worker's resources with the project's own bootstrap
# (`python -m consumer.ops.init`), so LocalStack, moto, the tests and the CloudFormation template all
# follow one ResourceSpec. Prints the worker's environment (F5_WORKER_QUEUE_URL=...) to LocalStack's log.
#
# In the Docker image, docker-compose.yml mounts the repository's consumer/ and contracts/ under /opt/f5-worker and the hook
# runs it with LocalStack's own Python, which has boto3 (and, in localstack-core 4.13.1's runtime, pydantic-settings
# too). If the settings model's pydantic + pydantic-settings are missing, they are installed once from PyPI into the
# LocalStack volume; without PyPI access the hook fails with the command to run on the host instead (same result:
# init_resources is idempotent). In host mode, localstack/run-host.sh points F5_WORKER_INIT_PYTHON at .venv/bin/python.
set -euo pipefail

src=${F5_WORKER_SRC:-/opt/f5-worker}
endpoint=${F5_WORKER_INIT_ENDPOINT:-http://localhost:4566}
name=${F5_WORKER_RESOURCE_NAME:-f5-worker}
py=${F5_WORKER_INIT_PYTHON:-}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
on_host="python -m consumer.ops.init --endpoint-url <LocalStack URL> --name $name   (in the repository)"

if [ ! -d "$src/consumer" ] || [ ! -d "$src/contracts" ]; then
  echo "f5-worker init: $src/consumer and $src/contracts must be mounted; run on the host: $on_host" >&2
  exit 1
fi
if [ -z "$py" ]; then
  py=/opt/code/localstack/.venv/bin/python
  [ -x "$py" ] || py=python3
  deps=${F5_WORKER_INIT_DEPS:-/var/lib/localstack/f5-worker-init-deps}
  export PYTHONPATH="$deps${PYTHONPATH:+:$PYTHONPATH}"
  if ! "$py" -c 'import boto3, pydantic_settings' 2>/dev/null; then
    echo "f5-worker init: installing pydantic + pydantic-settings into $deps (first start only)" >&2
    if ! "$py" -m pip install --quiet --disable-pip-version-check --target "$deps" \
      'pydantic>=2.7,<3' 'pydantic-settings>=2.3,<3'; then
      echo "f5-worker init: could not install the settings dependencies; run on the host: $on_host" >&2
      exit 1
    fi
  fi
fi

cd "$src"
"$py" -m consumer.ops.init --endpoint-url "$endpoint" --region "$AWS_DEFAULT_REGION" --name "$name"
