#!/usr/bin/env bash
# Idempotent setup on Debian/Ubuntu: system packages that are missing, .venv/
# at the project root, pinned Python requirements.  `--test` adds what the
# tests need (espeak-ng, tesseract-ocr, chromium, pytest...).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v redis-server >/dev/null || missing+=(redis-server)
fc-list 2>/dev/null | grep -q "DejaVu Sans Mono" || missing+=(fonts-dejavu-core fontconfig)
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
command -v gcc >/dev/null || missing+=(build-essential python3-dev)   # webrtcvad (Resemblyzer) builds from source
if (( with_tests )); then
  command -v espeak-ng >/dev/null || missing+=(espeak-ng)
  command -v tesseract >/dev/null || missing+=(tesseract-ocr tesseract-ocr-eng)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)   # browser tests (Playwright drives it)
fi
if (( ${#missing[@]} )); then
  echo "setup: installing system packages: ${missing[*]}"
  sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
files=(requirements.txt)
if (( with_tests )); then files+=(requirements-dev.txt); fi
reqs=()
for f in "${files[@]}"; do reqs+=(-r "$f"); done
stamp=".venv/.installed-$(cat "${files[@]}" constraints.txt | sha1sum | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing Python requirements into .venv (first run downloads ~3 GB)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "${reqs[@]}" -c constraints.txt
  touch "$stamp"
fi
[[ -f config.py ]] || cp config.example.py config.py
echo "setup: ready"
