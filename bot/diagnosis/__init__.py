"""Diagnosis of failed runs: log tail, tracebacks, classification, redaction."""
from __future__ import annotations

from bot.diagnosis.classify import diagnose_lines, diagnose_text
from bot.diagnosis.model import CATEGORIES, Diagnosis
from bot.core.secrets import redact, redact_lines
from bot.diagnosis.tail import tail_lines
from bot.diagnosis.tracebacks import ParsedTraceback, parse_tracebacks

__all__ = [
    "CATEGORIES", "Diagnosis", "ParsedTraceback", "diagnose_lines", "diagnose_text", "parse_tracebacks",
    "redact", "redact_lines", "tail_lines",
]
