# keepvip: one image for both processes.
#
#   keepvip-operator  the default command; runs as the non-root user 65532.
#   keepvip-agent     run by the agent DaemonSet the operator renders, as root
#                     with only NET_ADMIN and NET_RAW (its securityContext drops
#                     every other capability); standalone:
#                     docker run --user 0 --network host --cap-drop ALL \
#                       --cap-add NET_ADMIN --cap-add NET_RAW -v $PWD/vip.yaml:/vip.yaml:ro \
#                       IMAGE keepvip-agent --config /vip.yaml --node NAME
#
# Build:  docker build -t keepvip:dev .
# Another base (a mirror, or one built from Debian packages as hack/image/build.sh
# does where no registry is reachable):  --build-arg BASE=...
# Behind a TLS-intercepting proxy, give pip the proxy's CA bundle as a BuildKit
# secret:  --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt
# Without the secret pip uses its own CA bundle; nothing else changes.
#
# The design choice that is not obvious: the Kubernetes client (57 MB of
# generated models and API classes, two thirds of the image's Python code) is
# installed as bytecode only, in one zip archive on sys.path: 6.5 MB instead of
# 57 MB of source or 23 MB of .pyc files, and agents, whose root filesystem is
# read-only, do not compile it on every start. It must keep its docstrings
# (no -OO): kubernetes.watch finds a list call's return type in its docstring.
# Tracebacks inside the client show file and line but no source text.

# Debian 12 slim, pinned by date (the dated tags are never rebuilt).
ARG BASE=debian:bookworm-20250908-slim

FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv binutils gcc libc6-dev python3-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/keepvip
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the
# dependencies or their pins (hack/image/constraints.txt) change.
COPY pyproject.toml hack/image/constraints.txt ./
RUN --mount=type=secret,id=pip-ca \
    set -eu; \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    /opt/keepvip/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["kubernetes"]))' \
      > requirements.txt; \
    /opt/keepvip/bin/pip install --no-compile -c constraints.txt -r requirements.txt setuptools
COPY README.md ./
COPY agent agent
COPY operator operator
RUN set -eu; \
    venv=/opt/keepvip; \
    site=$($venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
    $venv/bin/pip install --no-compile --no-deps --no-build-isolation .; \
    $venv/bin/pip uninstall -y -q setuptools pip; \
    cd $site; \
    # kubernetes.aio is a second, asyncio copy of the whole client that neither
    # process imports (the agent and the operator use kubernetes.client; kopf
    # speaks aiohttp itself). Tests and C/Cython sources are not needed to run.
    rm -rf kubernetes/aio kubernetes/test kubernetes/e2e_test; \
    find kubernetes -name '*_test.py' -delete; \
    find . \( -name '*.c' -o -name '*.h' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) -delete; \
    find . -name __pycache__ -type d -prune -exec rm -rf {} +; \
    # Wheels ship their extension modules with symbols: 10 MB.
    find . -name '*.so' -exec strip --strip-unneeded {} +; \
    $venv/bin/python -m compileall -q -b kubernetes; \
    find kubernetes -name '*.py' -delete; \
    $venv/bin/python -m zipfile -c kubernetes.zip kubernetes/; \
    rm -rf kubernetes; \
    echo kubernetes.zip > kubernetes-zip.pth; \
    # Everything else keeps its source, with bytecode beside it.
    $venv/bin/python -m compileall -q .; \
    $venv/bin/python -c 'import kubernetes.client, kubernetes.watch, keepvip_operator.main, keepvip_agent.kube.nodeagent, keepvip_agent.runtime._rxwatch'; \
    $venv/bin/keepvip-agent --version; \
    $venv/bin/keepvip-operator --version

FROM ${BASE}
ARG BASE
ENV DEBIAN_FRONTEND=noninteractive
# Only the interpreter: no pip, no compiler, no package lists. Docs, man pages
# and translations stay out (the slim base's dpkg excludes). The standard
# library goes without its test suite and without the bytecode Debian compiles
# for it at install (11 MB). The price, measured: a process compiles the ~200
# standard modules it imports at each start, 0.65 s of CPU and 5 MB of peak
# memory more (keeping bytecode for just those modules would cost 5.8 MB of
# image). The operator's user: 65532, no shell, no home.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))') \
 && find "$stdlib" -name __pycache__ -type d -prune -exec rm -rf {} + \
 && rm -rf "$stdlib/test" "$stdlib/unittest/test" \
           /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && echo 'keepvip:x:65532:65532:keepvip operator:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'keepvip:x:65532:' >> /etc/group
COPY --from=build /opt/keepvip /opt/keepvip
ENV PATH=/opt/keepvip/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
CMD ["keepvip-operator"]
# Last: these change with every build and would otherwise invalidate the layers above.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="keepvip" \
      org.opencontainers.image.description="VRRP virtual-IP failover: the keepvip agent and the Kubernetes operator" \
      org.opencontainers.image.source="https://github.com/keepvip/keepvip" \
      org.opencontainers.image.documentation="https://github.com/keepvip/keepvip/blob/main/docs/install.md" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE}"

