"""Build the Dockerfile's images on a machine without Docker or a registry (buildah, debootstrap stand-in bases)
and check them as RunPod would run them (podman: uid 10001, read-only root, no network but loopback).

Entry point: `bash scripts/image` (see `python -m scripts.image_tool --help`)."""
