# The slot-provisioner worker, with the provider CLIs it drives.
FROM node:22-bookworm-slim
# node-pty compiles at install time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ARG CLAUDE_CODE_VERSION=latest
ARG CODEX_VERSION=latest
RUN npm install -g "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" "@openai/codex@${CODEX_VERSION}"
ENV DISABLE_AUTOUPDATER=1
WORKDIR /app
COPY package.json package-lock.json ./
# The install's postinstall (bin/prebuild-workflows.mjs) must exist; it builds nothing yet (no sources).
COPY bin ./bin
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
# The workflow bundles and the compiled entry point (bin/run-compiled.mjs), so a container polls at once.
RUN node bin/prebuild-workflows.mjs
RUN mkdir -p /var/lib/slot-provisioner/slots && chmod 700 /var/lib/slot-provisioner/slots
ENV SLOTS_DIR=/var/lib/slot-provisioner/slots
# Node itself is PID 1: SIGTERM (docker stop) reaches the worker, which closes its login CLIs.
CMD ["node", "bin/run-compiled.mjs", "workers/worker.ts"]
