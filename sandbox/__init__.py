"""Sorya's sandbox: provider emulators and the launcher. Never imported by ``app/``."""
