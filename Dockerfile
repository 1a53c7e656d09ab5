# The Gatehouse image the Kubernetes manifests run (deploy/kubernetes, docs/DEPLOY.md):
#   docker build -t ghcr.io/gatehouse/gatehouse:0.1.0 .
# Stage 1 builds on Debian 12 with Node.js 24 (native modules: better-sqlite3, ssh2,
# cpu-features, node-pty); stage 2 is distroless: Node.js 24 and glibc, no shell, no package
# manager, user 65532 (nonroot). The manifests run it with a read-only root filesystem:
# everything it writes goes to the data directory (/var/lib/gatehouse) and /tmp.
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY patches ./patches
COPY scripts ./scripts
COPY packages ./packages
RUN npm ci --no-audit --no-fund
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production \
    GATEHOUSE_DATA_DIR=/var/lib/gatehouse
COPY --from=build --chown=0:0 /app/package.json ./package.json
COPY --from=build --chown=0:0 /app/node_modules ./node_modules
COPY --from=build --chown=0:0 /app/packages ./packages
USER 65532:65532
EXPOSE 8443 7993 7994 7995 7996
ENTRYPOINT ["/nodejs/bin/node", "--no-memory-reducer", "--heap-growing-percent=100", "/app/packages/cli/bin/gatehouse.js"]
CMD ["server"]
