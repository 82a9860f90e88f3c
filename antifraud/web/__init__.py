"""The HTTP service: pre-transfer check, live branch warnings, hold/case/blacklist actions and the pages."""
