# The mcp-access image that docs/bot.md's sidecar examples run (the bot, or
# `connect` inside an agent's image built FROM it). Build it from a clone:
#
#   docker build -t registry.example.com/mcp-access:0.1 .
#
# Stage 1 builds and packs mcp-access exactly as `npm pack` does for a
# tarball install; stage 2 installs that tarball globally, so the image holds
# the same files a machine gets with `npm install -g mcp-access-0.1.0.tgz`.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json README.md ./
RUN npm ci --ignore-scripts
COPY bin ./bin
COPY src ./src
COPY docs ./docs
RUN npm pack --pack-destination /tmp

FROM node:20-bookworm-slim
COPY --from=build /tmp/mcp-access-*.tgz /tmp/
RUN npm install -g /tmp/mcp-access-*.tgz && rm /tmp/mcp-access-*.tgz && npm cache clean --force
# An unprivileged user; the sidecar examples run every container as 10001 so
# that the agent can read the identity file the bot writes (mode 0600).
USER 10001:10001
ENTRYPOINT ["mcp-access"]
CMD ["--help"]
