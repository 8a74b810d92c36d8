#!/usr/bin/env bash
# Debian packages gancore's defaults read: Fashion-MNIST's IDX files and an English word list.
# Installs them only when missing; needs root or sudo for apt-get.
set -euo pipefail
need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
[ -f /usr/share/dict/american-english ] || need+=(wamerican)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
  echo "gancore: please install the Debian packages: ${need[*]} (apt-get install ${need[*]})" >&2; exit 1
fi
echo "gancore: installing ${need[*]} with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
