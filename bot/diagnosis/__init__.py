"""Diagnosis of failed runs: log tail, tracebacks, classification. (Redaction: `bot.core.secrets`.)"""

from __future__ import annotations

from bot.diagnosis.classify import diagnose_lines, diagnose_text
from bot.diagnosis.model import CATEGORIES, Diagnosis
from bot.diagnosis.tail import tail_lines
from bot.diagnosis.tracebacks import ParsedTraceback, parse_tracebacks

__all__ = [
    "CATEGORIES",
    "Diagnosis",
    "ParsedTraceback",
    "diagnose_lines",
    "diagnose_text",
    "parse_tracebacks",
    "tail_lines",
]
