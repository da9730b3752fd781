#!/usr/bin/env bash
# The scripts' way of handing an operator's code to a login CLI: poll an HTTP
# endpoint every 2 s and print the code (and Enter) once it is there; whoever
# holds the CLI's terminal types what this prints. Stops after 60 tries.
set -u
url=$1
for _ in $(seq 1 60); do
  sleep 2
  if code=$(curl -sf --max-time 5 "$url") && [ -n "$code" ]; then
    printf '%s\r' "$code"
    exit 0
  fi
done
exit 1
