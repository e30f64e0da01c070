# The pipeline and its flows at one commit: the image a Prefect `docker` work pool runs
# (README "Worker image"). Tag it with the commit it was built from; the deployment names that tag.
#
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t biosignal-pipeline:$(git rev-parse HEAD) .
#   docker build --build-arg TORCH=cuda ...    # CUDA build: PyPI's torch wheels with their CUDA
#                                              # libraries (host: NVIDIA driver + container toolkit)
#
# Build from a clean checkout: the image holds the working tree, not the commit.
ARG PYTHON=3.11
FROM python:${PYTHON}-slim

# cpu: torch from the CPU wheel index (about 1 GB smaller); cuda: torch from PyPI (CUDA 12 bundled)
ARG TORCH=cpu
ARG GIT_COMMIT=unknown
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIPELINE_GIT_COMMIT=${GIT_COMMIT} PREFECT_LOGGING_EXTRA_LOGGERS=pipeline
LABEL org.opencontainers.image.revision=${GIT_COMMIT} org.opencontainers.image.title=biosignal-pipeline

RUN if [ "$TORCH" = cpu ]; then index="--index-url https://download.pytorch.org/whl/cpu"; \
    elif [ "$TORCH" = cuda ]; then index=""; \
    else echo "TORCH must be cpu or cuda, not $TORCH" >&2; exit 1; fi; \
    pip install $index torch==2.14.1 torchvision==0.29.1

# Editable install: the package finds configs/, flows/ and the bundled models beside it (REPO_ROOT).
WORKDIR /opt/pipeline
COPY . .
RUN pip install -e '.[flows]' && prefect version && pipeline --help >/dev/null

# A non-root user that may write the default store (artifacts/) and checkpoints (artifacts/work/).
RUN useradd --create-home --uid 1000 pipeline && chown -R pipeline /opt/pipeline/artifacts
USER pipeline
CMD ["pipeline", "--help"]
