#!/bin/bash
# The contract of tensorflow/serving's /usr/bin/tf_serving_entrypoint.sh: the
# model from MODEL_NAME and MODEL_BASE_PATH, ports from GRPC_PORT and PORT, and
# any extra arguments appended (the server takes the last of a repeated flag,
# so `--rest_api_port=N` as an extra argument overrides PORT). `exec`, so that
# the server is the container's main process.
exec tensorflow_model_server --port=${GRPC_PORT} --rest_api_port=${PORT} \
    --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} \
    "$@"
