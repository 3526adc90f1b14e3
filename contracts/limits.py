"""Explicit limits shared by producers and the worker. Change them here and regenerate the schemas."""

MAX_TEXT_CHARS = 5_000  # inline `text`
MAX_TEXT_URI_CHARS = 200_000  # `text_uri`: a chapter
MAX_TEXT_URI_BYTES = 4 * MAX_TEXT_URI_CHARS  # UTF-8 takes at most 4 bytes a character
LANGUAGE_TAG_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$"  # BCP-47, loosely: en, fr-CA, zh-Hant-TW
MAX_TRANSCRIPT_CHARS = 1_000
MAX_METADATA_BYTES = 4_096
MAX_METADATA_KEYS = 32
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VOICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^\s]{1,1024}$"
MAX_NFE_STEPS = 64
MAX_WEBHOOK_URL_CHARS = 2_048
